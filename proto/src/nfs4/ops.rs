//! COMPOUND4args / COMPOUND4res and the arguments and results of every operation used.
