"""What a check raises when it does not apply here; apart from the runner so checks need not import it."""


class Skip(Exception):
    """A check that does not apply here (the reason says why)."""
