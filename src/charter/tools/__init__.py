"""Tools: charter-declared functions, validated and run by the tools stage."""
