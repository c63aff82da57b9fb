"""overheard: hears residents' complaints about local problems and hands them to the city."""

__version__ = "0.1.0"
