"""Operational figures in the OpenMetrics text format, for Prometheus and its kin.

Counters live where the events happen (the router counts stanzas, the server logins);
gauges are read when scraped. Modules add their own gauges with ``Metrics.gauge``.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Sample = tuple[dict[str, str], float]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: str  # "counter" | "gauge"
    help: str
    read: Callable[[], Iterable[Sample]]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


@dataclass
class Metrics:
    started: float = field(default_factory=time.time)
    stanzas: Counter[str] = field(default_factory=Counter)  # by kind, as routed
    logins: Counter[str] = field(default_factory=Counter)  # "ok" | "failed"
    gauges: dict[str, tuple[str, list[Callable[[], Iterable[Sample]]]]] = field(
        default_factory=dict
    )

    def gauge(self, name: str, help_: str, read: Callable[[], Iterable[Sample]]) -> None:
        """Add a reader to gauge ``name`` (several hosts may feed one family)."""
        self.gauges.setdefault(name, (help_, []))[1].append(read)

    def remove(self, name: str, read: Callable[[], Iterable[Sample]]) -> None:
        readers = self.gauges.get(name, ("", []))[1]
        if read in readers:
            readers.remove(read)
        if not readers:
            self.gauges.pop(name, None)

    def _gauge_families(self) -> list[Family]:
        def merged(readers: list[Callable[[], Iterable[Sample]]]) -> Callable[[], list[Sample]]:
            return lambda: [sample for read in readers for sample in read()]

        return [
            Family(name, "gauge", help_, merged(readers))
            for name, (help_, readers) in self.gauges.items()
        ]

    def render(self) -> str:
        families = [
            Family(
                "heron_stanzas_routed",
                "counter",
                "Stanzas routed, by kind",
                lambda: [({"kind": k}, float(v)) for k, v in sorted(self.stanzas.items())],
            ),
            Family(
                "heron_logins",
                "counter",
                "Client logins judged, by result",
                lambda: [({"result": k}, float(v)) for k, v in sorted(self.logins.items())],
            ),
            *self._gauge_families(),
            Family("heron_uptime_seconds", "gauge", "Seconds since start", self._uptime),
            Family("process_resident_memory_bytes", "gauge", "Resident memory", self._rss),
            Family("process_cpu_seconds", "counter", "CPU time used", self._cpu),
            Family("process_open_fds", "gauge", "Open file descriptors", self._fds),
        ]
        lines: list[str] = []
        for family in families:
            lines.append(f"# TYPE {family.name} {family.kind}")
            lines.append(f"# HELP {family.name} {family.help}")
            suffix = "_total" if family.kind == "counter" else ""
            for labels, value in family.read():
                lines.append(f"{family.name}{suffix}{_labels(labels)} {value:g}")
        lines.append("# EOF")
        return "\n".join(lines) + "\n"

    def _uptime(self) -> list[Sample]:
        return [({}, time.time() - self.started)]

    @staticmethod
    def _rss() -> list[Sample]:
        try:
            with open("/proc/self/statm") as statm:
                pages = int(statm.read().split()[1])
            return [({}, float(pages * os.sysconf("SC_PAGE_SIZE")))]
        except (OSError, ValueError, IndexError):
            return [({}, float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))]

    @staticmethod
    def _cpu() -> list[Sample]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return [({}, usage.ru_utime + usage.ru_stime)]

    @staticmethod
    def _fds() -> list[Sample]:
        try:
            return [({}, float(len(os.listdir("/proc/self/fd"))))]
        except OSError:
            return []
