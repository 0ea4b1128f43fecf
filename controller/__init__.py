"""dockwright: a controller that carries out Docker operations recorded as rows in a SQL table."""

__version__ = "0.1.0"
