//! Reports rendered from `results.json` alone: JUnit XML, the Markdown resilience report, SVG
//! plots, and the size limits they must respect.

pub mod fit;
