"""Errors that reach the user as one clear message (the CLI prints them without a traceback)."""


class TrainingInputError(Exception):
    """Bad input the user can fix: the message says what is wrong and what to do."""


class NoInteractionsError(TrainingInputError):
    """The seed's "No interactions found"."""


class MatrixTooSparseError(TrainingInputError):
    """The seed's "Matrix too sparse": filtering left too little to learn from."""


class UnknownEventTypesError(TrainingInputError):
    """Event types without a configured weight; never dropped silently."""
