"""The project's own data files, written for Charter; README.md describes each one."""
