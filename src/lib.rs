//! faultline: Jepsen-style consistency testing on one machine.
#![warn(missing_docs)]
