"""The XEP modules shipped with Heron, by the name used in the config file."""

from typing import Final

from heron.config import DEFAULT_MODULES
from heron.core.module import Module
from heron.modules.adhoc import AdhocModule
from heron.modules.antispam import AntispamModule
from heron.modules.blocking import BlockingModule
from heron.modules.carbons import CarbonsModule
from heron.modules.csi import CsiModule
from heron.modules.disco import DiscoModule
from heron.modules.extdisco import ExtdiscoModule
from heron.modules.mam import MamModule
from heron.modules.muc import MucModule
from heron.modules.offline import OfflineModule
from heron.modules.ping import PingModule
from heron.modules.private import PrivateModule
from heron.modules.proxy65 import Proxy65Module
from heron.modules.pubsub import PubsubModule
from heron.modules.push import PushModule
from heron.modules.register import RegisterModule
from heron.modules.roster import RosterModule
from heron.modules.time import TimeModule
from heron.modules.upload import UploadModule
from heron.modules.vcard import VcardModule
from heron.modules.version import VersionModule

AVAILABLE: Final[dict[str, type[Module]]] = {
    cls.name: cls
    for cls in (
        DiscoModule,
        AdhocModule,
        PingModule,
        VersionModule,
        TimeModule,
        RegisterModule,
        RosterModule,
        OfflineModule,
        BlockingModule,
        VcardModule,
        PrivateModule,
        AntispamModule,
        CarbonsModule,
        CsiModule,
        MamModule,
        PushModule,
        PubsubModule,
        MucModule,
        ExtdiscoModule,
        Proxy65Module,
        UploadModule,
    )
}

# The default list lives with the config (the config layer cannot import modules).

__all__ = [
    "AVAILABLE",
    "DEFAULT_MODULES",
    "AdhocModule",
    "AntispamModule",
    "BlockingModule",
    "CarbonsModule",
    "CsiModule",
    "DiscoModule",
    "ExtdiscoModule",
    "MamModule",
    "MucModule",
    "OfflineModule",
    "PingModule",
    "PrivateModule",
    "Proxy65Module",
    "PubsubModule",
    "PushModule",
    "RegisterModule",
    "RosterModule",
    "TimeModule",
    "UploadModule",
    "VcardModule",
    "VersionModule",
]
