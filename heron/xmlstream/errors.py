"""Errors of the XML stream layer, named by their RFC 6120 §4.9.3 stream condition."""


class XmlStreamError(Exception):
    def __init__(self, condition: str, text: str = "") -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text
