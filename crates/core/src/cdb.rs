//! CDB building and validation.
