//! Sense data decoding: fixed and descriptor formats, sense keys, ASC/ASCQ text.
