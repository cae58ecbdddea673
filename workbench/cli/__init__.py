"""The command line and the end-to-end demo job it runs."""
