"""The one interaction layer: what a click, a drag, a key or a button means, decided once for both front ends,
and the `View` they draw. Imports the session, the engine and the outputs; never a front-end toolkit."""
