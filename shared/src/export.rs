//! The CSV export: fields, headers, rows (to be written).
