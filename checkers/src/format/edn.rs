//! Jepsen/Knossos EDN histories (to be written).
use crate::error::HistoryError;
use crate::history::History;

/// True when EDN lines look like Porcupine's kv logs.
pub fn looks_like_porcupine_kv(_text: &str) -> bool {
    false
}

/// Reads an EDN history.
pub fn read(_source: &str, _text: &str, _porcupine_kv: bool) -> Result<History, HistoryError> {
    todo!()
}
