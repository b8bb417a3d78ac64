//! The pNFS block layer: layout and extent cache, volume map, I/O engine, fencing, Disk impl.
