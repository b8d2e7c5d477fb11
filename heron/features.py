"""The README's feature table, generated from module metadata (ejabberd's DOAP habit).

`python -m heron.features` prints it; a test checks that README.md holds exactly this.
Rows for capabilities that are not modules yet are listed in CORE_ROWS with their status.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

from heron.core import components
from heron.core.module import Xep
from heron.modules import AVAILABLE

START: Final = "<!-- feature-table:start -->"
END: Final = "<!-- feature-table:end -->"


def _row(
    feature: str, spec: str, heron: str = "yes", prosody: str = "yes", ejabberd: str = "yes"
) -> tuple[str, str, str, str, str]:
    """A row of the table: feature, specification, Heron, Prosody 0.12, ejabberd 23.01."""
    return (feature, spec, heron, prosody, ejabberd)


CORE_ROWS: Final[tuple[tuple[str, str, str, str, str], ...]] = (
    _row("Client streams, STARTTLS, SASL, resource binding", "RFC 6120"),
    _row("SCRAM-SHA-1/256/512, PLAIN over TLS only", "RFC 5802, RFC 7677"),
    _row(
        "SCRAM -PLUS channel binding (tls-server-end-point, tls-unique)",
        "RFC 5929, XEP-0440",
        "partial: no tls-exporter",
        "partial",
        "partial",
    ),
    _row("Direct TLS for clients", "XEP-0368"),
    _row("JIDs with PRECIS normalisation", "RFC 7622"),
    _row("Rosters, subscriptions, presence, offline messages", "RFC 6121, XEP-0160"),
    _row(
        "Per-address connection caps, stanza and byte rates, slow-loris deadline",
        "XEP-0205",
        "yes, on by default",
        "partial: mod_limits, off by default",
        "partial: shapers",
    ),
    _row(
        "Failed-login throttling and blocking; no user enumeration at login",
        "RFC 6120 §6",
        "yes",
        "partial: no throttle by default; enumerable",
        "partial: mod_fail2ban; enumerable",
    ),
    _row(
        "Strangers refused or quarantined, outgoing request caps (`antispam`)",
        "",
        "yes",
        "community modules",
        "no",
    ),
    _row(
        "Server-to-server federation: dialback, SASL EXTERNAL, Direct TLS, SRV, one"
        " bidirectional connection per peer",
        "RFC 6120, XEP-0220, XEP-0178, XEP-0368, XEP-0288",
    ),
    _row("Stream management: acks, resumption, unacknowledged messages kept", "XEP-0198"),
    _row(
        "SASL2 with inline Bind2, stream resumption and FAST tokens; SCRAM upgrade tasks",
        "XEP-0388, XEP-0386, XEP-0198, XEP-0484, XEP-0480",
        "partial: FAST with HT-SHA-256-ENDP and -NONE, not -EXPR (no tls-exporter yet)",
        "community modules",
        "no",
    ),
    _row(
        "Web clients: WebSocket and BOSH into the same stream engine, with stream management",
        "RFC 7395, XEP-0124, XEP-0206",
    ),
    _row("HTTP connection discovery (host-meta, host-meta.json)", "XEP-0156"),
    _row(
        "A browser chat page on the server itself (Converse.js over WebSocket)",
        "",
        "yes, at /chat",
        "community module",
        "no",
    ),
)


# Parts of the core that declare the XEPs they implement, as modules do: (title, XEPs).
CORE_XEPS: Final[tuple[tuple[str, tuple[Xep, ...]], ...]] = (
    (components.DESCRIPTION, components.XEPS),
)


def _xep_row(title: str, xep: Xep) -> tuple[str, str, str, str, str]:
    status = "yes" if xep.status == "complete" else f"partial: {xep.note}"
    return (title, f"XEP-{xep.number:04d} v{xep.version}", status, xep.prosody, xep.ejabberd)


def _module_rows() -> list[tuple[str, str, str, str, str]]:
    rows = [_xep_row(title, xep) for title, xeps in CORE_XEPS for xep in xeps]
    for cls in AVAILABLE.values():
        title = cls.description.rstrip(".") or cls.name
        rows.extend(_xep_row(f"{title} (`{cls.name}`)", xep) for xep in cls.xeps)
    return rows


def feature_table() -> str:
    lines = [
        "| feature | specification | Heron | Prosody | ejabberd |",
        "|---|---|---|---|---|",
    ]
    for row in (*CORE_ROWS, *_module_rows()):
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_readme(path: Path) -> None:
    """Replace the table between the README's markers with the current one."""
    text = path.read_text()
    start = text.index(START) + len(START)
    end = text.index(END)
    path.write_text(text[:start] + "\n" + feature_table() + "\n" + text[end:])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_readme(Path("README.md"))
    else:
        print(feature_table())
