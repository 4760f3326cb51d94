//! CSC v2 conformance checks (library; the binary is a thin CLI over it).
