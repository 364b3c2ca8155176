//! LPIs: the its-server's messages, the LPI configuration (property) table and the
//! pending tables in guest memory.
//!
//! An LPI exists from `lpi_map` to `lpi_unmap`. Its priority and enable bit come from its
//! property table entry (at GICR_PROPBASER + INTID - 8192), read when it is mapped, when
//! its redistributor's EnableLPIs is set, and on INV/INVALL; an entry outside the VM's RAM
//! or beyond GICR_PROPBASER.IDbits reads as disabled. Its pending state is a latch like
//! an edge-triggered interrupt's, kept while it is disabled. Its target is its
//! collection's vCPU (MOVALL may move it without changing the collection, as the
//! architecture defines). A redistributor with EnableLPIs clear holds no LPI pending
//! state: MSIs to it are dropped, and clearing EnableLPIs writes its LPIs' pending state
//! to its pending table and forgets it.

use ipc::GUEST_EVENT;
use log::{debug, info, warn};

use crate::config::FIRST_LPI;
use crate::interface::PRIORITY_MASK;
use crate::irq::{EDGE, ENABLED, EXISTS, Irq, IrqId, LATCH, NO_VCPU};
use crate::redistributor::{PENDBASER_ADDRESS, PROPBASER_ADDRESS, PROPBASER_ID_BITS};
use crate::server::Vgic;
use crate::{GuestMemory, Vcpus};
use its_server::{MIN_LPI_ID_BITS, Reload};

/// The property entry's enable bit.
const PROPERTY_ENABLE: u8 = 1;
/// The property entry's priority bits, `[7:2]`.
const PROPERTY_PRIORITY: u8 = 0xfc;

/// Bytes of pending table handled at once.
const PENDING_CHUNK: usize = 64;

/// Applies a property table entry (`None`: unreadable, so disabled).
fn apply_property(irq: &mut Irq, entry: Option<u8>) {
    match entry {
        Some(entry) => {
            irq.priority = entry & PROPERTY_PRIORITY & PRIORITY_MASK;
            irq.set(ENABLED, entry & PROPERTY_ENABLE != 0);
        }
        None => irq.set(ENABLED, false),
    }
}

/// The vGIC bound to the vCPUs and guest memory for one its-server message: implements
/// [`its_server::Vgic`]. Each call completes its effect (including list-register retraction
/// on the vCPUs concerned) before it returns.
pub struct ItsLink<'a, V, M, const VCPUS: usize, const LPIS: usize, const COLLECTIONS: usize> {
    vgic: &'a mut Vgic<VCPUS, LPIS, COLLECTIONS>,
    vcpus: &'a mut V,
    memory: &'a M,
}

impl<const VCPUS: usize, const LPIS: usize, const COLLECTIONS: usize> Vgic<VCPUS, LPIS, COLLECTIONS> {
    /// Binds the vGIC to `vcpus` and `memory` for the its-server's messages.
    pub fn its_link<'a, V: Vcpus, M: GuestMemory>(
        &'a mut self,
        vcpus: &'a mut V,
        memory: &'a M,
    ) -> ItsLink<'a, V, M, VCPUS, LPIS, COLLECTIONS> {
        ItsLink { vgic: self, vcpus, memory }
    }

    /// The property table entry of LPI `intid`, or `None` if the table does not reach it.
    fn property(&self, memory: &impl GuestMemory, intid: u32) -> Option<u8> {
        let id_bits = (self.propbaser & PROPBASER_ID_BITS) as u32 + 1;
        if id_bits < MIN_LPI_ID_BITS as u32 || intid >> id_bits != 0 {
            debug!("LPI {intid} is beyond GICR_PROPBASER.IDbits: disabled");
            return None;
        }
        let address = (self.propbaser & PROPBASER_ADDRESS) + (intid - FIRST_LPI) as u64;
        let mut entry = [0];
        match memory.read(address, &mut entry) {
            Ok(()) => Some(entry[0]),
            Err(_) => {
                info!(target: GUEST_EVENT, "LPI {intid}: property entry at {address:#x} is outside RAM: disabled");
                None
            }
        }
    }

    /// The vCPU collection `icid` targets.
    fn collection_vcpu(&self, icid: u16) -> u16 {
        match self.collections.get(icid as usize) {
            Some(&vcpu) => vcpu,
            None => {
                warn!(target: GUEST_EVENT, "collection {icid} is beyond the server's capacity: no target");
                NO_VCPU
            }
        }
    }

    /// The index of mapped LPI `intid`.
    fn mapped_lpi(&self, intid: u32) -> Option<IrqId> {
        let id = self.lpi_id(intid).filter(|&id| self.irq(id).has(EXISTS));
        if id.is_none() {
            debug!("LPI {intid} is not mapped");
        }
        id
    }

    /// Position of `id` in the LPI arrays.
    fn lpi_index(&self, id: IrqId) -> usize {
        (Self::intid(id) - FIRST_LPI) as usize
    }

    /// Re-reads the property entries of the mapped LPIs `select` picks.
    fn reload(
        &mut self,
        vcpus: &mut impl Vcpus,
        memory: &impl GuestMemory,
        select: impl Fn(&Self, IrqId) -> bool,
    ) {
        for id in self.lpi_ids() {
            if self.irq(id).has(EXISTS) && select(self, id) {
                let entry = self.property(memory, Self::intid(id));
                self.modify(vcpus, id, |irq| apply_property(irq, entry));
            }
        }
    }

    /// GICR_CTLR.EnableLPIs 0 -> 1 on `vcpu`: its LPIs take their property entries, and each
    /// set bit of its pending table (from INTID 8192; none if PTZ was written) makes the
    /// LPI pending.
    pub(crate) fn enable_lpis(&mut self, vcpus: &mut impl Vcpus, memory: &impl GuestMemory, vcpu: u16) {
        let cpu = &mut self.cpus[vcpu as usize];
        cpu.lpis_enabled = true;
        let mut readable = !core::mem::take(&mut cpu.pending_table_zeroed);
        let table = cpu.pendbaser & PENDBASER_ADDRESS;
        self.reload(vcpus, memory, |vgic, id| vgic.irq(id).target == vcpu);
        let mut intid = FIRST_LPI;
        while intid < self.config.lpi_end() {
            let mut bytes = [0u8; PENDING_CHUNK];
            let length = (((self.config.lpi_end() - intid) / 8) as usize).min(PENDING_CHUNK);
            let address = table + (intid / 8) as u64;
            if readable && memory.read(address, &mut bytes[..length]).is_err() {
                info!(target: GUEST_EVENT, "GICR{vcpu}: pending table at {address:#x} is outside RAM: read as zero");
                readable = false;
                bytes = [0; PENDING_CHUNK];
            }
            for (byte_index, &byte) in bytes[..length].iter().enumerate() {
                let mut bits = byte;
                while bits != 0 {
                    let lpi = intid + byte_index as u32 * 8 + bits.trailing_zeros();
                    bits &= bits - 1;
                    if let Some(id) = self.lpi_id(lpi).filter(|&id| self.owned_by(id, vcpu)) {
                        self.modify(vcpus, id, |irq| irq.set(LATCH, true));
                    }
                }
            }
            intid += length as u32 * 8;
        }
    }

    /// GICR_CTLR.EnableLPIs 1 -> 0 on `vcpu`: the pending state of its LPIs goes to its
    /// pending table (their bits set or cleared, others untouched) and leaves the server;
    /// pending copies in its list registers are retracted, active ones finish.
    pub(crate) fn disable_lpis(&mut self, vcpus: &mut impl Vcpus, memory: &impl GuestMemory, vcpu: u16) {
        self.cpus[vcpu as usize].lpis_enabled = false;
        let table = self.cpus[vcpu as usize].pendbaser & PENDBASER_ADDRESS;
        let mut intid = FIRST_LPI;
        while intid < self.config.lpi_end() {
            let mut bytes = [0u8; PENDING_CHUNK];
            let length = (((self.config.lpi_end() - intid) / 8) as usize).min(PENDING_CHUNK);
            let address = table + (intid / 8) as u64;
            let readable = memory.read(address, &mut bytes[..length]).is_ok();
            let mut owned_any = false;
            for lpi in intid..intid + length as u32 * 8 {
                let Some(id) = self.lpi_id(lpi).filter(|&id| self.owned_by(id, vcpu)) else { continue };
                owned_any = true;
                let mut pending = false;
                self.modify(vcpus, id, |irq| {
                    pending = irq.has(LATCH);
                    irq.set(LATCH, false);
                });
                let byte = &mut bytes[((lpi - intid) / 8) as usize];
                let bit = 1 << (lpi % 8);
                *byte = if pending { *byte | bit } else { *byte & !bit };
            }
            if owned_any && !(readable && memory.write(address, &bytes[..length]).is_ok()) {
                info!(target: GUEST_EVENT, "GICR{vcpu}: pending table at {address:#x} is outside RAM: pending LPIs dropped");
            }
            intid += length as u32 * 8;
        }
    }

    /// Whether `id` is a mapped LPI targeting `vcpu`.
    fn owned_by(&self, id: IrqId, vcpu: u16) -> bool {
        let irq = self.irq(id);
        irq.has(EXISTS) && irq.target == vcpu
    }
}

impl<V: Vcpus, M: GuestMemory, const VCPUS: usize, const LPIS: usize, const COLLECTIONS: usize>
    its_server::Vgic for ItsLink<'_, V, M, VCPUS, LPIS, COLLECTIONS>
{
    fn collection_target(&mut self, icid: u16, vcpu: Option<u16>) {
        let vgic = &mut *self.vgic;
        let Some(entry) = vgic.collections.get_mut(icid as usize) else {
            warn!(target: GUEST_EVENT, "collection {icid} is beyond the server's capacity: not mapped");
            return;
        };
        let target = match vcpu {
            Some(vcpu) if vcpu < vgic.config.vcpus => vcpu,
            Some(vcpu) => {
                warn!(target: GUEST_EVENT, "collection {icid} mapped to vCPU {vcpu}, which does not exist: no target");
                NO_VCPU
            }
            None => NO_VCPU,
        };
        *entry = target;
        for id in vgic.lpi_ids() {
            if vgic.irq(id).has(EXISTS) && vgic.lpi_collections[vgic.lpi_index(id)] == icid {
                vgic.modify(self.vcpus, id, |irq| irq.target = target);
            }
        }
        vgic.commit(self.vcpus);
    }

    fn lpi_map(&mut self, vintid: u32, icid: u16) {
        let vgic = &mut *self.vgic;
        let Some(id) = vgic.lpi_id(vintid) else {
            warn!(target: GUEST_EVENT, "LPI {vintid} mapped beyond the configured LPIs: ignored");
            return;
        };
        let target = vgic.collection_vcpu(icid);
        let entry = vgic.property(self.memory, vintid);
        let index = vgic.lpi_index(id);
        vgic.lpi_collections[index] = icid;
        // A copy of an earlier LPI with this number may still be active in a list
        // register: the new LPI starts with that active state, as the same INTID.
        vgic.modify(self.vcpus, id, |irq| {
            irq.set(EXISTS, true);
            irq.set(EDGE, true);
            irq.set(LATCH, false);
            irq.target = target;
            apply_property(irq, entry);
        });
        vgic.commit(self.vcpus);
    }

    fn lpi_unmap(&mut self, vintid: u32) {
        let vgic = &mut *self.vgic;
        if let Some(id) = vgic.mapped_lpi(vintid) {
            vgic.modify(self.vcpus, id, |irq| {
                irq.set(EXISTS, false);
                irq.set(LATCH, false);
            });
        }
        vgic.commit(self.vcpus);
    }

    fn lpi_set_pending(&mut self, vintid: u32) {
        let vgic = &mut *self.vgic;
        if let Some(id) = vgic.mapped_lpi(vintid) {
            let target = vgic.irq(id).target;
            if target != NO_VCPU && !vgic.cpus[target as usize].lpis_enabled {
                debug!("LPI {vintid} to GICR{target}, whose LPIs are disabled: dropped");
            } else {
                vgic.modify(self.vcpus, id, |irq| irq.set(LATCH, true));
            }
        }
        vgic.commit(self.vcpus);
    }

    fn lpi_clear_pending(&mut self, vintid: u32) {
        let vgic = &mut *self.vgic;
        if let Some(id) = vgic.mapped_lpi(vintid) {
            vgic.modify(self.vcpus, id, |irq| irq.set(LATCH, false));
        }
        vgic.commit(self.vcpus);
    }

    fn lpi_move(&mut self, vintid: u32, icid: u16) {
        let vgic = &mut *self.vgic;
        if let Some(id) = vgic.mapped_lpi(vintid) {
            let target = vgic.collection_vcpu(icid);
            let index = vgic.lpi_index(id);
            vgic.lpi_collections[index] = icid;
            vgic.modify(self.vcpus, id, |irq| irq.target = target);
        }
        vgic.commit(self.vcpus);
    }

    fn move_all(&mut self, from_vcpu: u16, to_vcpu: u16) {
        let vgic = &mut *self.vgic;
        if to_vcpu >= vgic.config.vcpus {
            warn!(target: GUEST_EVENT, "MOVALL to vCPU {to_vcpu}, which does not exist: ignored");
            return;
        }
        for id in vgic.lpi_ids() {
            if vgic.owned_by(id, from_vcpu) {
                vgic.modify(self.vcpus, id, |irq| irq.target = to_vcpu);
            }
        }
        vgic.commit(self.vcpus);
    }

    fn reload_config(&mut self, what: Reload) {
        let vgic = &mut *self.vgic;
        match what {
            Reload::Lpi(vintid) => {
                if let Some(id) = vgic.mapped_lpi(vintid) {
                    let entry = vgic.property(self.memory, vintid);
                    vgic.modify(self.vcpus, id, |irq| apply_property(irq, entry));
                }
            }
            Reload::Collection(icid) => vgic
                .reload(self.vcpus, self.memory, |vgic, id| vgic.lpi_collections[vgic.lpi_index(id)] == icid),
        }
        vgic.commit(self.vcpus);
    }

    /// Every effect of earlier messages is complete when their calls return, so SYNC has
    /// nothing left to wait for.
    fn sync(&mut self, _vcpu: u16) {}
}
