//! Golden bytes: filled from captures in the lab.
