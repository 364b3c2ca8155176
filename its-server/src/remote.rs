//! The vgic-server over IPC: [`RemoteVgic`] turns each [`Vgic`] call into one
//! `ipc::vgic` Call, and [`deliver`] turns a received request back into the call, so the
//! two shells agree on the mapping by construction.

use ipc::vgic::{DONE, ItsRequest};
use ipc::{Error, Message};
use log::warn;

use crate::{Reload, Vgic};

/// The vgic-server reached through `call`, a synchronous IPC Call on a capability to its
/// endpoint (`|message| VGIC.call(message)` in the shell). Each method returns when the
/// vgic-server replied, that is, when the effect is complete.
pub struct RemoteVgic<C> {
    call: C,
}

impl<C: FnMut(&Message) -> Result<Message, Error>> RemoteVgic<C> {
    /// The vgic-server behind `call`.
    pub const fn new(call: C) -> Self {
        Self { call }
    }

    /// Calls the vgic-server with `request`. A failed Call or a refusal leaves the
    /// interrupt as it was, which the guest sees as a command without effect: logged, as
    /// a command error is.
    fn request(&mut self, request: ItsRequest) {
        match (self.call)(&request.encode()) {
            Ok(reply) if reply.label() == DONE => {}
            Ok(reply) => warn!("its: vgic-server refused {request:?} (reply label {:#x})", reply.label().0),
            Err(error) => warn!("its: calling the vgic-server with {request:?} failed: {error:?}"),
        }
    }
}

impl<C: FnMut(&Message) -> Result<Message, Error>> Vgic for RemoteVgic<C> {
    fn collection_target(&mut self, icid: u16, vcpu: Option<u16>) {
        self.request(ItsRequest::CollectionTarget { icid, vcpu });
    }

    fn lpi_map(&mut self, vintid: u32, icid: u16) {
        self.request(ItsRequest::LpiMap { vintid, icid });
    }

    fn lpi_unmap(&mut self, vintid: u32) {
        self.request(ItsRequest::LpiUnmap { vintid });
    }

    fn lpi_set_pending(&mut self, vintid: u32) {
        self.request(ItsRequest::LpiSetPending { vintid });
    }

    fn lpi_clear_pending(&mut self, vintid: u32) {
        self.request(ItsRequest::LpiClearPending { vintid });
    }

    fn lpi_move(&mut self, vintid: u32, icid: u16) {
        self.request(ItsRequest::LpiMove { vintid, icid });
    }

    fn move_all(&mut self, from_vcpu: u16, to_vcpu: u16) {
        self.request(ItsRequest::MoveAll { from_vcpu, to_vcpu });
    }

    fn reload_config(&mut self, what: Reload) {
        self.request(match what {
            Reload::Lpi(vintid) => ItsRequest::ReloadLpi { vintid },
            Reload::Collection(icid) => ItsRequest::ReloadCollection { icid },
        });
    }

    fn sync(&mut self, vcpu: u16) {
        self.request(ItsRequest::Sync { vcpu });
    }
}

/// Makes the [`Vgic`] call that `request` stands for on `vgic` (the vgic-server's side).
pub fn deliver(request: ItsRequest, vgic: &mut impl Vgic) {
    match request {
        ItsRequest::CollectionTarget { icid, vcpu } => vgic.collection_target(icid, vcpu),
        ItsRequest::LpiMap { vintid, icid } => vgic.lpi_map(vintid, icid),
        ItsRequest::LpiUnmap { vintid } => vgic.lpi_unmap(vintid),
        ItsRequest::LpiSetPending { vintid } => vgic.lpi_set_pending(vintid),
        ItsRequest::LpiClearPending { vintid } => vgic.lpi_clear_pending(vintid),
        ItsRequest::LpiMove { vintid, icid } => vgic.lpi_move(vintid, icid),
        ItsRequest::MoveAll { from_vcpu, to_vcpu } => vgic.move_all(from_vcpu, to_vcpu),
        ItsRequest::ReloadLpi { vintid } => vgic.reload_config(Reload::Lpi(vintid)),
        ItsRequest::ReloadCollection { icid } => vgic.reload_config(Reload::Collection(icid)),
        ItsRequest::Sync { vcpu } => vgic.sync(vcpu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::RecordingVgic;
    use ipc::vgic::REJECTED;

    /// Every method, in an order the recorder accepts (LPIs mapped before use).
    fn call_every_method(vgic: &mut impl Vgic) {
        vgic.collection_target(1, Some(2));
        vgic.lpi_map(8192, 1);
        vgic.lpi_set_pending(8192);
        vgic.lpi_clear_pending(8192);
        vgic.lpi_move(8192, 3);
        vgic.move_all(2, 0);
        vgic.reload_config(Reload::Lpi(8192));
        vgic.reload_config(Reload::Collection(3));
        vgic.sync(0);
        vgic.lpi_unmap(8192);
        vgic.collection_target(1, None);
    }

    #[test]
    fn calls_reach_the_other_side_as_the_same_calls() {
        let mut direct = RecordingVgic::default();
        call_every_method(&mut direct);
        let mut far = RecordingVgic::default();
        let mut calls = 0;
        let mut remote = RemoteVgic::new(|message: &Message| {
            calls += 1;
            deliver(ItsRequest::decode(message).expect("a well-formed request"), &mut far);
            Ok(Message::new(DONE))
        });
        call_every_method(&mut remote);
        assert_eq!(calls, 11, "one Call per method call");
        assert_eq!(far.take(), direct.take());
        assert!(far.take().is_empty());
    }

    #[test]
    fn refusals_and_failed_calls_leave_the_caller_running() {
        let replies = [Ok(Message::new(REJECTED)), Err(Error::InvalidCapability)];
        let mut calls = 0;
        let mut remote = RemoteVgic::new(|_: &Message| {
            calls += 1;
            replies[calls - 1].clone()
        });
        remote.lpi_unmap(8192);
        remote.sync(0);
        assert_eq!(calls, 2);
    }
}
