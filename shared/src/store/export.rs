//! Streaming users for the export (to be written).
