//! The maps a VMM gets without manifest entries: every component that receives on a
//! VM's fault endpoint (its VMM) maps that VM's RAM read-write at [`VM_RAM_VADDR`] and
//! the VM's image, the initial contents of its RAM (`ipc::vm_image`), read-only at
//! [`VM_IMAGE_VADDR`], so that PSCI SYSTEM_RESET can restore the RAM. The generated
//! constants are `VM_RAM`, `VM_RAM_SIZE`, `VM_RAM_IPA` (and the other constants of a
//! `vm-ram` map) and `VM_IMAGE`, `VM_IMAGE_SIZE` (room for the image: the VM's memory
//! size; the image itself is as long as its header says).

use super::{CapObject, Component, Map, Mapped, Perms, Vm};
use ipc::endpoint_rights::RECV;

/// Where a VMM maps its VM's RAM: 1 TiB, far above the regions placed from
/// `ipc::layout::REGIONS_BASE`.
pub const VM_RAM_VADDR: u64 = 0x100_0000_0000;
/// Where a VMM maps its VM's image: 2 TiB.
pub const VM_IMAGE_VADDR: u64 = 0x200_0000_0000;

/// Gives each VM's VMM (the first VM whose fault endpoint it receives on) its two maps.
pub(super) fn add(components: &mut [Component], vms: &[Vm]) {
    for component in components {
        let receives = |endpoint: usize| {
            component.caps.iter().any(|cap| {
                matches!(cap.object, CapObject::Endpoint { index, rights } if index == endpoint && rights & RECV != 0)
            })
        };
        let Some((index, vm)) = vms.iter().enumerate().find(|(_, vm)| receives(vm.fault_endpoint)) else {
            continue;
        };
        let map = |name: &str, mapped, vaddr, perms| Map {
            name: name.to_owned(),
            mapped,
            size: vm.memory,
            vaddr,
            perms,
        };
        component.maps.push(map("vm-ram", Mapped::VmRam(index), VM_RAM_VADDR, Perms::Rw));
        component.maps.push(map("vm-image", Mapped::VmImage(index), VM_IMAGE_VADDR, Perms::R));
    }
}
