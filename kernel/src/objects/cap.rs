//! Capability lookup: a slot index in the caller's table to an object it may use.

use super::Kernel;
use bootinfo::{Cap, cap_kind};
use ipc::Error;

impl Kernel<'_> {
    /// The capability in slot `index` of `thread`'s table; an index out of range or an
    /// empty slot is [`Error::InvalidCapability`].
    pub(super) fn lookup(&self, thread: usize, index: u64) -> Result<Cap, Error> {
        usize::try_from(index)
            .ok()
            .and_then(|index| self.threads[thread].caps.get(index))
            .filter(|cap| cap.kind != cap_kind::NULL)
            .copied()
            .ok_or(Error::InvalidCapability)
    }
}

/// The object index of `cap` if it names a `kind` object ([`Error::WrongObjectType`]
/// otherwise) and carries `right` ([`Error::NoRights`] otherwise).
pub(super) fn object_with_right(cap: Cap, kind: u8, right: u8) -> Result<usize, Error> {
    if cap.kind != kind {
        Err(Error::WrongObjectType)
    } else if cap.rights & right == 0 {
        Err(Error::NoRights)
    } else {
        Ok(cap.object as usize)
    }
}
