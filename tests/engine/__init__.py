"""The engine: sessions (editing, tracking, files, outputs), rendering and exports, the interaction layer."""
