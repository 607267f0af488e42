"""The study directory: its files and their checks (study, fs), the seal that says
this user's wdsweep wrote it (trust), plan records and trainer checkpoints (records),
repair, export/import (publish), and the status a person reads (status). A study is
untrusted input: nothing here imports code from it or follows a link inside it."""
