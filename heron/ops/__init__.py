"""Running Heron: reload, the local admin socket, status, import and export."""
