"""XEP-0363 HTTP File Upload: slots, the HTTP side and expiry (module.py); slots and
quotas kept in store.py."""

from heron.modules.upload.module import UploadModule, safe_filename

__all__ = ["UploadModule", "safe_filename"]
