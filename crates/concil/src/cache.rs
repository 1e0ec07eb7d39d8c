//! The content-addressed cache directory (layout in DESIGN.md), locks and atomic commit.
