"""Planning, before anything runs (no Ray): the spec (spec, limits), the user's code
and its pins (code), the grid expanded into members and packed into trials (packs),
the member table every layer shows (members), and the memory/compute bounds (bounds)."""
