//! Session transcripts with secrets redacted (being written).
