//! PSCI 1.1 and the SMCCC calls a guest makes with HVC or SMC, over the VMM's record of
//! which vCPUs are on.
//!
//! Function IDs follow the SMC Calling Convention: bit 31 fast call, bit 30 the 64-bit
//! convention, bits 29:24 the owning service, bits 15:0 the function. Served here:
//!
//! - Arm architecture calls (0x8000_xxxx): `SMCCC_VERSION` (1.1) and
//!   `SMCCC_ARCH_FEATURES` (which knows only those two);
//! - PSCI (0x8400_xxxx, 0xC400_xxxx): VERSION (1.1), FEATURES, CPU_ON, CPU_OFF,
//!   CPU_SUSPEND, AFFINITY_INFO, MIGRATE_INFO_TYPE, SYSTEM_OFF and SYSTEM_RESET, which
//!   the VMM serves by restarting the VM (`Vmm`'s reset: only the boot vCPU is on
//!   afterwards, [`Psci::reset`]);
//! - vendor-specific hypervisor calls (0x8600_xxxx): [`REPORT_STATUS`].
//!
//! Everything else answers NOT_SUPPORTED (-1). A 32-bit function (bit 30 clear) uses only
//! the low 32 bits of its arguments, as the convention says; results are always
//! sign-extended to 64 bits, as KVM returns them.
//!
//! vCPU `i` has the MPIDR affinity [`mpidr`]`(i)`, the value xtask writes into its
//! VMPIDR_EL2 and its device-tree `reg`.

use smccc::arch::{SMCCC_ARCH_FEATURES, SMCCC_VERSION};
use smccc::psci::error::{ALREADY_ON, INTERNAL_FAILURE, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED};
use smccc::psci::{
    AffinityState, PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_32,
    PSCI_CPU_ON_64, PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES, PSCI_MIGRATE_INFO_TYPE,
    PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION, Version,
};

/// Vendor-specific hypervisor call (SMC32 fast call, owner 6): the guest reports its test
/// status in `w1` (0 = pass) before it calls PSCI `SYSTEM_OFF`, which ends the run with
/// that status. Returns 0.
///
/// The first non-zero status sticks: a later report of 0 cannot hide an earlier failure.
/// Without any report, `SYSTEM_OFF` ends the run with status 0. Each report is logged
/// (`guest reported status N`, rate-limited as guest events are).
pub const REPORT_STATUS: u32 = 0x8600_0001;

/// The PSCI version implemented: 1.1.
pub const PSCI_IMPLEMENTED: Version = Version { major: 1, minor: 1 };
/// The SMCCC version implemented: 1.1 (`SMCCC_ARCH_FEATURES` exists).
pub const SMCCC_IMPLEMENTED: u32 = 0x1_0001;
/// MIGRATE_INFO_TYPE: no Trusted OS that needs migrating.
const MIGRATION_NOT_REQUIRED: i64 = 2;
/// PSCI SUCCESS.
const SUCCESS: i64 = 0;

/// The affinity fields of an MPIDR (Aff3 in bits 39:32, Aff2..Aff0 in bits 23:0); every
/// other bit of a PSCI `target_cpu` must be zero.
const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Most vCPUs one VM can have (`bootinfo::MAX_VCPUS` counts all VMs together).
pub const MAX_VCPUS: usize = 32;

/// The MPIDR affinity of vCPU `index`: Aff0 `index % 16`, Aff1 `index / 16` (one GICv3 SGI
/// target list reaches sixteen vCPUs), as xtask assigns it.
pub const fn mpidr(index: usize) -> u64 {
    (index % 16) as u64 | ((index / 16) as u64) << 8
}

/// What the VMM does with the vCPUs on the guest's behalf.
pub trait VcpuControl {
    /// Starts stopped vCPU `vcpu` at guest-physical `entry` with `x0 = context_id`.
    fn start(&mut self, vcpu: usize, entry: u64, context_id: u64) -> Result<(), ipc::Error>;
    /// Stops vCPU `vcpu` wherever it is (`VCPU_STOP`); a trap it forwarded is dropped.
    fn stop(&mut self, vcpu: usize) -> Result<(), ipc::Error>;
}

/// How a call ends for the calling vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Resume it with this value in `x0` (and zero in `x1..=x3`).
    Return(i64),
    /// It turned itself off (CPU_OFF): do not resume it.
    Stop,
    /// The guest powered the VM off (SYSTEM_OFF): end the run with this status.
    PowerOff {
        /// 0, or the first non-zero status the guest reported with [`REPORT_STATUS`].
        status: u32,
    },
    /// The guest reset the VM (SYSTEM_RESET): restart it.
    Reset,
}

/// The PSCI implementation of one VM: which vCPUs are on, and the status it reported.
#[derive(Debug)]
pub struct Psci {
    /// `on[i]`: vCPU `i` runs (or waits for an interrupt); off ones wait for CPU_ON.
    on: [bool; MAX_VCPUS],
    vcpus: usize,
    status: u32,
}

impl Psci {
    /// A VM of `vcpus` vCPUs (at most [`MAX_VCPUS`]) where only vCPU 0, the boot vCPU, is on.
    pub fn new(vcpus: usize) -> Self {
        assert!((1..=MAX_VCPUS).contains(&vcpus), "a VM has 1..={MAX_VCPUS} vCPUs, not {vcpus}");
        let mut on = [false; MAX_VCPUS];
        on[0] = true;
        Self { on, vcpus, status: 0 }
    }

    /// The VM restarted: only the boot vCPU is on. A failure status reported before stays
    /// (a test guest cannot hide a failure by resetting).
    pub fn reset(&mut self) {
        self.on = [false; MAX_VCPUS];
        self.on[0] = true;
    }

    /// The number of vCPUs.
    pub fn vcpus(&self) -> usize {
        self.vcpus
    }

    /// Whether vCPU `vcpu` is on, in the VMM's record.
    pub fn is_on(&self, vcpu: usize) -> bool {
        self.on[..self.vcpus].get(vcpu).copied().unwrap_or(false)
    }

    /// Serves call `x` (the guest's x0..=x7) made by vCPU `caller` with HVC or SMC.
    pub fn call(&mut self, caller: usize, x: &[u64; 8], vcpus: &mut impl VcpuControl) -> Outcome {
        let function = x[0] as u32;
        // SMC32/HVC32 functions see only the low halves of their arguments.
        let argument = |i: usize| if function & (1 << 30) == 0 { x[i] & u64::from(u32::MAX) } else { x[i] };
        let value = match function {
            SMCCC_VERSION => i64::from(SMCCC_IMPLEMENTED),
            SMCCC_ARCH_FEATURES => match argument(1) as u32 {
                SMCCC_VERSION | SMCCC_ARCH_FEATURES => SUCCESS,
                _ => NOT_SUPPORTED.into(),
            },
            PSCI_VERSION => i64::from(u32::from(PSCI_IMPLEMENTED)),
            // CPU_SUSPEND's feature flags are 0: the original power_state format, no
            // OS-initiated mode.
            PSCI_FEATURES if Self::implemented(argument(1) as u32) => SUCCESS,
            PSCI_FEATURES => NOT_SUPPORTED.into(),
            PSCI_CPU_ON_32 | PSCI_CPU_ON_64 => self.cpu_on(argument(1), argument(2), argument(3), vcpus),
            PSCI_CPU_OFF => {
                if let Some(on) = self.on[..self.vcpus].get_mut(caller) {
                    *on = false;
                }
                return Outcome::Stop;
            }
            // A standby that any event ends: the vCPU resumes at once, as after a WFI that
            // woke early, which PSCI allows for every power state (a power-down request
            // may be served as a shallower state).
            PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => SUCCESS,
            PSCI_AFFINITY_INFO_32 | PSCI_AFFINITY_INFO_64 => self.affinity_info(argument(1), argument(2)),
            PSCI_MIGRATE_INFO_TYPE => MIGRATION_NOT_REQUIRED,
            PSCI_SYSTEM_OFF => return Outcome::PowerOff { status: self.status },
            PSCI_SYSTEM_RESET => return Outcome::Reset,
            REPORT_STATUS => {
                // The line a test system with several VMs watches for a VM that does not
                // end the run (images/two-vms); a guest-caused line, so rate-limited.
                log::info!(target: ipc::GUEST_EVENT, "guest reported status {}", argument(1) as u32);
                if self.status == 0 {
                    self.status = argument(1) as u32;
                }
                SUCCESS
            }
            _ => NOT_SUPPORTED.into(),
        };
        Outcome::Return(value)
    }

    /// Whether PSCI_FEATURES reports `function` as implemented.
    fn implemented(function: u32) -> bool {
        matches!(
            function,
            PSCI_VERSION
                | PSCI_FEATURES
                | PSCI_CPU_ON_32
                | PSCI_CPU_ON_64
                | PSCI_CPU_OFF
                | PSCI_CPU_SUSPEND_32
                | PSCI_CPU_SUSPEND_64
                | PSCI_AFFINITY_INFO_32
                | PSCI_AFFINITY_INFO_64
                | PSCI_MIGRATE_INFO_TYPE
                | PSCI_SYSTEM_OFF
                | PSCI_SYSTEM_RESET
                | SMCCC_VERSION
        )
    }

    /// The vCPU whose MPIDR affinity is `target`.
    fn vcpu_of(&self, target: u64) -> Option<usize> {
        (0..self.vcpus).find(|&index| mpidr(index) == target)
    }

    /// CPU_ON. The target is on once `VCPU_START` returns, so ON_PENDING never arises:
    /// the vCPU is runnable before the caller resumes.
    fn cpu_on(&mut self, target: u64, entry: u64, context_id: u64, vcpus: &mut impl VcpuControl) -> i64 {
        let Some(vcpu) = self.vcpu_of(target) else {
            return INVALID_PARAMETERS.into();
        };
        if self.on[vcpu] {
            return ALREADY_ON.into();
        }
        match vcpus.start(vcpu, entry, context_id) {
            Ok(()) => {
                self.on[vcpu] = true;
                SUCCESS
            }
            // The kernel refuses an entry point outside guest RAM.
            Err(ipc::Error::InvalidArgument) => INVALID_ADDRESS.into(),
            Err(error) => {
                log::warn!("CPU_ON: starting vCPU {vcpu} failed: {error:?}");
                INTERNAL_FAILURE.into()
            }
        }
    }

    /// AFFINITY_INFO: ON if any vCPU in the affinity instance is on, else OFF; the fields
    /// below `lowest_level` are ignored.
    fn affinity_info(&self, target: u64, lowest_level: u64) -> i64 {
        let ignored = match lowest_level {
            0 => 0,
            1 => 0xff,
            2 => 0xffff,
            3 => 0xff_ffff,
            _ => return INVALID_PARAMETERS.into(),
        };
        if target & !AFFINITY_MASK != 0 {
            return INVALID_PARAMETERS.into();
        }
        let mut members = (0..self.vcpus).filter(|&index| mpidr(index) & !ignored == target & !ignored);
        let Some(first) = members.next() else {
            return INVALID_PARAMETERS.into();
        };
        let state = if self.on[first] || members.any(|index| self.on[index]) {
            AffinityState::On
        } else {
            AffinityState::Off
        };
        state as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records VCPU_START invocations; fails them with `refuse` when set.
    #[derive(Default)]
    struct FakeVcpus {
        started: Vec<(usize, u64, u64)>,
        refuse: Option<ipc::Error>,
    }

    impl VcpuControl for FakeVcpus {
        fn start(&mut self, vcpu: usize, entry: u64, context_id: u64) -> Result<(), ipc::Error> {
            if let Some(error) = self.refuse {
                return Err(error);
            }
            self.started.push((vcpu, entry, context_id));
            Ok(())
        }

        fn stop(&mut self, _vcpu: usize) -> Result<(), ipc::Error> {
            unreachable!("PSCI itself never stops a vCPU")
        }
    }

    fn call(psci: &mut Psci, caller: usize, args: &[u64], vcpus: &mut FakeVcpus) -> Outcome {
        let mut x = [0; 8];
        x[..args.len()].copy_from_slice(args);
        psci.call(caller, &x, vcpus)
    }

    fn value(psci: &mut Psci, caller: usize, args: &[u64], vcpus: &mut FakeVcpus) -> i64 {
        match call(psci, caller, args, vcpus) {
            Outcome::Return(value) => value,
            other => panic!("expected a return value, got {other:?}"),
        }
    }

    const ON: i64 = AffinityState::On as i64;
    const OFF: i64 = AffinityState::Off as i64;
    const AFFINITY_INFO: u64 = PSCI_AFFINITY_INFO_64 as u64;
    const CPU_ON: u64 = PSCI_CPU_ON_64 as u64;

    #[test]
    fn versions_are_psci_1_1_and_smccc_1_1() {
        let (mut psci, mut vcpus) = (Psci::new(2), FakeVcpus::default());
        assert_eq!(value(&mut psci, 0, &[PSCI_VERSION.into()], &mut vcpus), 0x1_0001);
        assert_eq!(value(&mut psci, 0, &[SMCCC_VERSION.into()], &mut vcpus), 0x1_0001);
        let features = SMCCC_ARCH_FEATURES.into();
        assert_eq!(value(&mut psci, 0, &[features, SMCCC_VERSION.into()], &mut vcpus), 0);
        let workaround = smccc::arch::SMCCC_ARCH_WORKAROUND_1.into();
        assert_eq!(value(&mut psci, 0, &[features, workaround], &mut vcpus), -1);
    }

    #[test]
    fn features_reports_implemented_functions_only() {
        let (mut psci, mut vcpus) = (Psci::new(1), FakeVcpus::default());
        let features = PSCI_FEATURES.into();
        for implemented in
            [PSCI_CPU_ON_64, PSCI_CPU_SUSPEND_64, PSCI_AFFINITY_INFO_32, PSCI_SYSTEM_RESET, SMCCC_VERSION]
        {
            assert_eq!(
                value(&mut psci, 0, &[features, implemented.into()], &mut vcpus),
                0,
                "{implemented:#x}"
            );
        }
        for missing in [smccc::psci::PSCI_SYSTEM_SUSPEND_64, REPORT_STATUS, 0x8400_00ff] {
            assert_eq!(value(&mut psci, 0, &[features, missing.into()], &mut vcpus), -1, "{missing:#x}");
        }
    }

    #[test]
    fn unknown_functions_are_not_supported() {
        let (mut psci, mut vcpus) = (Psci::new(1), FakeVcpus::default());
        for function in [0xc400_0012, 0x8600_ff01, 0xc5ff_ffff, 0x1234] {
            let result = value(&mut psci, 0, &[function], &mut vcpus);
            assert_eq!(result as u64, u64::MAX, "{function:#x}: -1, sign-extended");
        }
        assert_eq!(value(&mut psci, 0, &[PSCI_MIGRATE_INFO_TYPE.into()], &mut vcpus), 2);
    }

    #[test]
    fn the_function_id_is_the_low_half_of_x0() {
        let (mut psci, mut vcpus) = (Psci::new(1), FakeVcpus::default());
        assert_eq!(value(&mut psci, 0, &[0xdead_0000_8400_0000], &mut vcpus), 0x1_0001);
    }

    #[test]
    fn cpu_on_starts_the_target_and_affinity_info_follows() {
        let (mut psci, mut vcpus) = (Psci::new(2), FakeVcpus::default());
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, mpidr(0), 0], &mut vcpus), ON);
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, mpidr(1), 0], &mut vcpus), OFF);
        assert_eq!(value(&mut psci, 0, &[CPU_ON, mpidr(1), 0x4008_1000, 0x77], &mut vcpus), 0);
        assert_eq!(vcpus.started, [(1, 0x4008_1000, 0x77)]);
        assert!(psci.is_on(1));
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, mpidr(1), 0], &mut vcpus), ON);
        // A second CPU_ON of a running vCPU, and of the caller itself.
        assert_eq!(value(&mut psci, 0, &[CPU_ON, mpidr(1), 0x4008_1000, 0], &mut vcpus), ALREADY_ON.into());
        assert_eq!(value(&mut psci, 1, &[CPU_ON, mpidr(0), 0x4008_1000, 0], &mut vcpus), ALREADY_ON.into());
        assert_eq!(vcpus.started.len(), 1);
    }

    #[test]
    fn cpu_off_stops_the_caller_which_cpu_on_restarts() {
        let (mut psci, mut vcpus) = (Psci::new(2), FakeVcpus::default());
        value(&mut psci, 0, &[CPU_ON, mpidr(1), 0x4008_0000, 1], &mut vcpus);
        assert_eq!(call(&mut psci, 1, &[PSCI_CPU_OFF.into()], &mut vcpus), Outcome::Stop);
        assert!(!psci.is_on(1));
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, mpidr(1), 0], &mut vcpus), OFF);
        assert_eq!(value(&mut psci, 0, &[CPU_ON, mpidr(1), 0x4009_0000, 2], &mut vcpus), 0);
        assert_eq!(vcpus.started, [(1, 0x4008_0000, 1), (1, 0x4009_0000, 2)]);
        // The boot vCPU may turn itself off too; the other one can bring it back.
        assert_eq!(call(&mut psci, 0, &[PSCI_CPU_OFF.into()], &mut vcpus), Outcome::Stop);
        assert_eq!(value(&mut psci, 1, &[AFFINITY_INFO, mpidr(0), 0], &mut vcpus), OFF);
        assert_eq!(value(&mut psci, 1, &[CPU_ON, mpidr(0), 0x4008_0000, 3], &mut vcpus), 0);
        assert!(psci.is_on(0));
    }

    #[test]
    fn cpu_on_rejects_unknown_targets_and_reports_refused_starts() {
        let (mut psci, mut vcpus) = (Psci::new(2), FakeVcpus::default());
        let invalid = i64::from(INVALID_PARAMETERS);
        assert_eq!(value(&mut psci, 0, &[CPU_ON, mpidr(2), 0x4008_0000, 0], &mut vcpus), invalid);
        assert_eq!(value(&mut psci, 0, &[CPU_ON, 1 << 31 | 1, 0x4008_0000, 0], &mut vcpus), invalid);
        vcpus.refuse = Some(ipc::Error::InvalidArgument);
        assert_eq!(value(&mut psci, 0, &[CPU_ON, mpidr(1), 0x1, 0], &mut vcpus), INVALID_ADDRESS.into());
        vcpus.refuse = Some(ipc::Error::WrongObjectType);
        assert_eq!(
            value(&mut psci, 0, &[CPU_ON, mpidr(1), 0x4008_0000, 0], &mut vcpus),
            INTERNAL_FAILURE.into()
        );
        assert!(!psci.is_on(1), "a refused start leaves the vCPU off");
    }

    #[test]
    fn cpu_on_32_uses_the_low_halves_of_its_arguments() {
        let (mut psci, mut vcpus) = (Psci::new(2), FakeVcpus::default());
        let on_32 = PSCI_CPU_ON_32.into();
        assert_eq!(
            value(&mut psci, 0, &[on_32, 1 << 32 | 1, 0xffff_ffff_4008_0000, 1 << 40 | 5], &mut vcpus),
            0
        );
        assert_eq!(vcpus.started, [(1, 0x4008_0000, 5)]);
    }

    #[test]
    fn mpidrs_put_sixteen_vcpus_in_each_cluster() {
        assert_eq!([mpidr(0), mpidr(15), mpidr(16), mpidr(31)], [0, 15, 0x100, 0x10f]);
        let (mut psci, mut vcpus) = (Psci::new(18), FakeVcpus::default());
        assert_eq!(value(&mut psci, 0, &[CPU_ON, 0x101, 0x4008_0000, 0], &mut vcpus), 0);
        assert_eq!(vcpus.started, [(17, 0x4008_0000, 0)]);
    }

    #[test]
    fn affinity_info_covers_clusters_at_higher_levels() {
        let (mut psci, mut vcpus) = (Psci::new(18), FakeVcpus::default());
        // Cluster 1 (vCPUs 16 and 17) is off; cluster 0 holds the boot vCPU.
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, 0x100, 1], &mut vcpus), OFF);
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, 0x005, 1], &mut vcpus), ON);
        value(&mut psci, 0, &[CPU_ON, 0x101, 0x4008_0000, 0], &mut vcpus);
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, 0x1ff, 1], &mut vcpus), ON);
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, 0x100, 0], &mut vcpus), OFF);
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, 0x00_0000, 3], &mut vcpus), ON);
        let invalid = i64::from(INVALID_PARAMETERS);
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, 0x200, 1], &mut vcpus), invalid, "no such cluster");
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, 0, 4], &mut vcpus), invalid, "no level 4");
        assert_eq!(value(&mut psci, 0, &[AFFINITY_INFO, 1 << 24, 0], &mut vcpus), invalid, "reserved bits");
    }

    #[test]
    fn cpu_suspend_returns_success_at_once() {
        let (mut psci, mut vcpus) = (Psci::new(1), FakeVcpus::default());
        let powerdown = 1 << 16;
        assert_eq!(
            value(&mut psci, 0, &[PSCI_CPU_SUSPEND_64.into(), powerdown, 0x4008_0000, 0], &mut vcpus),
            0
        );
        assert_eq!(value(&mut psci, 0, &[PSCI_CPU_SUSPEND_32.into(), 0], &mut vcpus), 0);
        assert!(psci.is_on(0));
    }

    #[test]
    fn system_off_ends_the_run_with_the_first_failure_reported() {
        let (mut psci, mut vcpus) = (Psci::new(1), FakeVcpus::default());
        let off = [PSCI_SYSTEM_OFF.into()];
        assert_eq!(call(&mut psci, 0, &off, &mut vcpus), Outcome::PowerOff { status: 0 });
        let report = REPORT_STATUS.into();
        assert_eq!(value(&mut psci, 0, &[report, 0], &mut vcpus), 0);
        assert_eq!(call(&mut psci, 0, &off, &mut vcpus), Outcome::PowerOff { status: 0 });
        assert_eq!(value(&mut psci, 0, &[report, 1 << 32 | 3], &mut vcpus), 0);
        assert_eq!(value(&mut psci, 0, &[report, 0], &mut vcpus), 0);
        assert_eq!(value(&mut psci, 0, &[report, 7], &mut vcpus), 0);
        assert_eq!(call(&mut psci, 0, &off, &mut vcpus), Outcome::PowerOff { status: 3 });
        let reset = [PSCI_SYSTEM_RESET.into()];
        assert_eq!(call(&mut psci, 0, &reset, &mut vcpus), Outcome::Reset);
    }

    #[test]
    fn reset_leaves_only_the_boot_vcpu_on_and_keeps_the_status() {
        let (mut psci, mut vcpus) = (Psci::new(3), FakeVcpus::default());
        value(&mut psci, 0, &[CPU_ON, mpidr(2), 0x4008_0000, 0], &mut vcpus);
        value(&mut psci, 0, &[REPORT_STATUS.into(), 5], &mut vcpus);
        assert_eq!(call(&mut psci, 2, &[PSCI_CPU_OFF.into()], &mut vcpus), Outcome::Stop);
        value(&mut psci, 0, &[CPU_ON, mpidr(1), 0x4008_0000, 0], &mut vcpus);
        psci.reset();
        assert_eq!((psci.is_on(0), psci.is_on(1), psci.is_on(2)), (true, false, false));
        assert_eq!(
            call(&mut psci, 0, &[PSCI_SYSTEM_OFF.into()], &mut vcpus),
            Outcome::PowerOff { status: 5 }
        );
    }
}
