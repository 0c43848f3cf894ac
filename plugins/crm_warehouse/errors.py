"""Errors the user is expected to see: printed as one clear line, never as a traceback."""


class WarehouseError(Exception):
    """An expected failure with a message that says what is wrong and what to do next."""


class BatchHeld(WarehouseError):
    """A batch failed its load gate; nothing from it was published."""


class DeletesRefused(BatchHeld):
    """Key reconciliation found implausibly many keys missing from the source; no tombstone was written."""
