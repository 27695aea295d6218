"""simnet traces: the syscall log of one server run, in one format for every backend.

A trace is JSON Lines: a header (what ran, with which configs) and one record per syscall (the
request and the result it was handed). docs/trace-format.md describes the format; `codec` is its
executable form. Like simnet/server, this package is pure: it reads and writes the file objects
and paths it is handed, and touches no clock, network or random number generator.
"""

from simnet.trace.codec import FORMAT, VERSION, Record, TraceError, TraceHeader
from simnet.trace.reader import read_trace
from simnet.trace.writer import Recorder, TraceWriter

__all__ = [
    "FORMAT",
    "VERSION",
    "Record",
    "Recorder",
    "TraceError",
    "TraceHeader",
    "TraceWriter",
    "read_trace",
]
