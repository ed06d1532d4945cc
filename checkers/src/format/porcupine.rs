//! Porcupine's etcd logs (to be written).
use crate::error::HistoryError;
use crate::history::History;

/// Reads a Porcupine etcd log.
pub fn read_etcd(_source: &str, _text: &str) -> Result<History, HistoryError> {
    todo!()
}
