//! Page-table construction (to be written).
