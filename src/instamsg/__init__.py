"""InstaMsg: a self-hostable real-time messaging and connectivity platform for the Internet of Things."""

__version__ = "0.1.0"
