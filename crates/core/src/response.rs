//! Decoding of the data that common commands return (INQUIRY, READ CAPACITY, ...).
