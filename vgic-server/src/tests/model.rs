//! A randomized comparison of the server (driven through its registers, lines and SGIs,
//! with a simulated guest acknowledging and completing interrupts in hardware) against a
//! reference model of the GIC architecture's per-interrupt state machine.
//!
//! The model knows nothing of list registers: an interrupt is pending (latch or level
//! line), active, enabled, has a priority and a target, and the guest takes the
//! highest-priority pending, inactive, enabled interrupt targeting its vCPU whose
//! priority is above its running priority. The server must agree on every register read
//! and on every acknowledge; the one place four list registers may legitimately fall
//! short (all four holding active interrupts) is allowed for explicitly. The generator
//! keeps at most four interrupts active, never clears or sets the active state of an
//! interrupt the guest is handling, and so exercises the rest of the state machine.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::spec::*;
use crate::fakes::{Machine, VMCR_EOI_MODE};
use crate::{Config, Width};

/// The SPIs: INTID, edge-triggered, priority (with ties on purpose).
const SPIS: [(u32, bool, u8); 8] = [
    (32, true, 0x10),
    (33, true, 0x20),
    (34, true, 0x20),
    (35, true, 0x40),
    (36, false, 0x10),
    (37, false, 0x80),
    (38, false, 0x40),
    (39, false, 0xf0),
];
/// The SGIs of each vCPU: INTID, priority.
const SGIS: [(u32, u8); 2] = [(1, 0x30), (2, 0x20)];
const VCPUS: u16 = 2;
const MAX_ACTIVE: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Spi(u32),
    Sgi(u16, u32),
}

impl Key {
    fn intid(self) -> u32 {
        match self {
            Key::Spi(intid) | Key::Sgi(_, intid) => intid,
        }
    }
}

/// The architecture's state of one interrupt.
#[derive(Clone, Copy, Debug)]
struct State {
    edge: bool,
    priority: u8,
    enabled: bool,
    latch: bool,
    line: bool,
    active: bool,
    target: u16,
}

impl State {
    fn pending(&self) -> bool {
        self.latch || (!self.edge && self.line)
    }

    /// An input line change: a rising edge latches an edge-triggered interrupt.
    fn drive(&mut self, level: bool) {
        if self.edge && level && !self.line {
            self.latch = true;
        }
        self.line = level;
    }
}

struct Model {
    irqs: BTreeMap<Key, State>,
    group1: bool,
    /// What each vCPU's guest is handling, innermost last.
    stacks: [Vec<Key>; VCPUS as usize],
}

impl Model {
    fn running_priority(&self, vcpu: u16) -> u16 {
        self.stacks[vcpu as usize].last().map_or(0x100, |key| self.irqs[key].priority as u16)
    }

    /// What the guest on `vcpu` may take now.
    fn deliverable(&self, vcpu: u16) -> Vec<Key> {
        let running = self.running_priority(vcpu);
        self.irqs
            .iter()
            .filter(|(_, s)| {
                s.pending()
                    && !s.active
                    && s.enabled
                    && self.group1
                    && s.target == vcpu
                    && (s.priority as u16) < running
            })
            .map(|(&key, _)| key)
            .collect()
    }

    fn active_count(&self) -> usize {
        self.irqs.values().filter(|s| s.active).count()
    }

    fn handled(&self, key: Key) -> bool {
        self.stacks.iter().any(|stack| stack.contains(&key))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Pulse(usize),
    Line(usize, bool),
    SetPending(usize),
    ClearPending(usize),
    SetActive(usize),
    ClearActive(usize),
    Enable(usize, bool),
    Route(usize, u16),
    Sgi {
        sender: u16,
        target: u16,
        sgi: usize,
    },
    Group(bool),
    Ack(u16),
    Eoi(u16),
    /// EOImode 1: EOIR drops the priority, DIR deactivates.
    EoiThenDir(u16),
    Check,
}

/// A random operation, weighted towards the guest taking and completing interrupts.
fn random_op(random: &mut fastrand::Rng) -> Op {
    let spi = random.usize(..SPIS.len());
    let vcpu = random.u16(..VCPUS);
    let mostly = |random: &mut fastrand::Rng| random.u8(..5) != 0;
    match random.u8(..26) {
        0..2 => Op::Pulse(spi),
        2..4 => Op::Line(spi, random.bool()),
        4 => Op::SetPending(spi),
        5 => Op::ClearPending(spi),
        6 => Op::SetActive(spi),
        7 => Op::ClearActive(spi),
        8 => Op::Enable(spi, mostly(random)),
        9 => Op::Route(spi, vcpu),
        10..12 => Op::Sgi { sender: random.u16(..VCPUS), target: vcpu, sgi: random.usize(..SGIS.len()) },
        12 => Op::Group(mostly(random)),
        13..18 => Op::Ack(vcpu),
        18..21 => Op::Eoi(vcpu),
        21 => Op::EoiThenDir(vcpu),
        _ => Op::Check,
    }
}

struct World {
    m: Machine<2>,
    model: Model,
}

impl World {
    fn new() -> Self {
        let mut m = Machine::new(Config { vcpus: VCPUS, spis: 32, lpi_id_bits: None });
        m.enable_distributor();
        let mut irqs = BTreeMap::new();
        let mut config = 0;
        for (index, &(intid, edge, priority)) in SPIS.iter().enumerate() {
            config |= (edge as u32) << (2 * index + 1);
            m.setup_spi(intid, priority, 0);
            let state =
                State { edge, priority, enabled: true, latch: false, line: false, active: false, target: 0 };
            irqs.insert(Key::Spi(intid), state);
        }
        m.gicd_write(ICFGR + 8, config);
        for vcpu in 0..VCPUS {
            for &(intid, priority) in &SGIS {
                m.setup_private(vcpu, intid, priority);
                let state = State {
                    edge: true,
                    priority,
                    enabled: true,
                    latch: false,
                    line: false,
                    active: false,
                    target: vcpu,
                };
                irqs.insert(Key::Sgi(vcpu, intid), state);
            }
        }
        Self { m, model: Model { irqs, group1: true, stacks: [Vec::new(), Vec::new()] } }
    }

    fn spi(&mut self, index: usize) -> (u32, u32, &mut State) {
        let intid = SPIS[index].0;
        (intid, 1 << (intid - 32), self.model.irqs.get_mut(&Key::Spi(intid)).unwrap())
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Pulse(index) => {
                let (intid, _, state) = self.spi(index);
                state.drive(true);
                state.drive(false);
                self.m.spi_pulse(intid);
            }
            Op::Line(index, level) => {
                let (intid, _, state) = self.spi(index);
                state.drive(level);
                self.m.spi_level(intid, level);
            }
            Op::SetPending(index) => {
                let (_, bit, state) = self.spi(index);
                state.latch = true;
                self.m.gicd_write(ISPENDR + 4, bit);
            }
            Op::ClearPending(index) => {
                let (_, bit, state) = self.spi(index);
                state.latch = false;
                self.m.gicd_write(ICPENDR + 4, bit);
            }
            Op::SetActive(index) => {
                let key = Key::Spi(SPIS[index].0);
                if self.model.active_count() < MAX_ACTIVE && !self.model.handled(key) {
                    let (_, bit, state) = self.spi(index);
                    state.active = true;
                    self.m.gicd_write(ISACTIVER + 4, bit);
                }
            }
            Op::ClearActive(index) => {
                if !self.model.handled(Key::Spi(SPIS[index].0)) {
                    let (_, bit, state) = self.spi(index);
                    state.active = false;
                    self.m.gicd_write(ICACTIVER + 4, bit);
                }
            }
            Op::Enable(index, on) => {
                let (_, bit, state) = self.spi(index);
                state.enabled = on;
                self.m.gicd_write(if on { ISENABLER } else { ICENABLER } + 4, bit);
            }
            Op::Route(index, vcpu) => {
                let (intid, _, state) = self.spi(index);
                state.target = vcpu;
                self.m.gicd_write_sized(
                    IROUTER + 8 * intid as u64,
                    Width::Doubleword,
                    crate::vcpu_affinity(vcpu) as u64,
                );
            }
            Op::Sgi { sender, target, sgi } => {
                let intid = SGIS[sgi].0;
                self.model.irqs.get_mut(&Key::Sgi(target, intid)).unwrap().latch = true;
                self.m.sgi(sender, (intid as u64) << 24 | 1 << target);
            }
            Op::Group(on) => {
                self.model.group1 = on;
                self.m.gicd_write(0, (on as u32) << 1);
            }
            Op::Ack(vcpu) => {
                if self.model.active_count() < MAX_ACTIVE {
                    self.acknowledge(vcpu);
                }
            }
            Op::Eoi(vcpu) => {
                if let Some(key) = self.model.stacks[vcpu as usize].pop() {
                    self.model.irqs.get_mut(&key).unwrap().active = false;
                    self.m.eoi(vcpu, key.intid());
                }
            }
            Op::EoiThenDir(vcpu) => {
                if let Some(key) = self.model.stacks[vcpu as usize].pop() {
                    self.model.irqs.get_mut(&key).unwrap().active = false;
                    self.m.vcpus.cpus[vcpu as usize].vmcr |= VMCR_EOI_MODE;
                    self.m.eoi(vcpu, key.intid());
                    self.m.dir(vcpu, key.intid());
                    self.m.vcpus.cpus[vcpu as usize].vmcr &= !VMCR_EOI_MODE;
                }
            }
            Op::Check => self.compare_registers(),
        }
        self.check_handled_are_listed();
    }

    fn acknowledge(&mut self, vcpu: u16) {
        let deliverable = self.model.deliverable(vcpu);
        match self.m.ack(vcpu) {
            Some(intid) => {
                let key = if intid < 32 { Key::Sgi(vcpu, intid) } else { Key::Spi(intid) };
                assert!(
                    deliverable.contains(&key),
                    "vCPU {vcpu} took {key:?}; the model allows {deliverable:?}"
                );
                let best = deliverable.iter().map(|key| self.model.irqs[key].priority).min().unwrap();
                assert_eq!(
                    self.model.irqs[&key].priority, best,
                    "vCPU {vcpu} took {key:?} before a higher priority"
                );
                let state = self.model.irqs.get_mut(&key).unwrap();
                state.active = true;
                state.latch = false;
                self.model.stacks[vcpu as usize].push(key);
            }
            None => {
                let full_of_active = self.m.vcpus.cpus[vcpu as usize].lrs.iter().all(|lr| lr.state.active());
                assert!(
                    deliverable.is_empty() || full_of_active,
                    "vCPU {vcpu} took nothing; the model offers {deliverable:?}; LRs {:?}",
                    self.m.vcpus.cpus[vcpu as usize].lrs
                );
            }
        }
    }

    /// Every interrupt a guest is handling is active in one of its list registers (active
    /// copies are never evicted).
    fn check_handled_are_listed(&self) {
        for vcpu in 0..VCPUS {
            for key in &self.model.stacks[vcpu as usize] {
                let lrs = &self.m.vcpus.cpus[vcpu as usize].lrs;
                assert!(
                    lrs.iter().any(|lr| lr.vintid == key.intid() && lr.state.active()),
                    "vCPU {vcpu} handles {key:?}, which is not active in {lrs:?}"
                );
            }
        }
    }

    fn compare_registers(&mut self) {
        let spi_pending = self.m.gicd_read(ISPENDR + 4);
        let spi_active = self.m.gicd_read(ISACTIVER + 4);
        let mut reads = BTreeMap::new();
        for &(intid, _, _) in &SPIS {
            let bit = 1 << (intid - 32);
            reads.insert(Key::Spi(intid), (spi_pending & bit != 0, spi_active & bit != 0));
        }
        for vcpu in 0..VCPUS {
            let pending = self.m.gicr_read(vcpu, SGI_BASE + ISPENDR);
            let active = self.m.gicr_read(vcpu, SGI_BASE + ISACTIVER);
            for &(intid, _) in &SGIS {
                reads.insert(Key::Sgi(vcpu, intid), (pending >> intid & 1 != 0, active >> intid & 1 != 0));
            }
        }
        for (key, state) in &self.model.irqs {
            assert_eq!(
                reads[key],
                (state.pending(), state.active),
                "{key:?} (pending, active); model {state:?}"
            );
        }
    }

    /// The guests complete what they handle; then everything must still agree.
    fn finish(mut self) {
        for vcpu in 0..VCPUS {
            while !self.model.stacks[vcpu as usize].is_empty() {
                self.apply(Op::Eoi(vcpu));
            }
        }
        self.compare_registers();
    }
}

/// Runs `ops` from reset, panicking at the first disagreement.
fn run(ops: &[Op]) {
    let mut world = World::new();
    for op in ops {
        world.apply(op.clone());
    }
    world.finish();
}

/// The shortest sequence found by dropping operations from a failing `ops` one at a time
/// while it still fails.
fn shrink(mut ops: Vec<Op>) -> Vec<Op> {
    let fails = |ops: &[Op]| catch_unwind(AssertUnwindSafe(|| run(ops))).is_err();
    let mut index = 0;
    while index < ops.len() {
        let mut shorter = ops.clone();
        shorter.remove(index);
        if fails(&shorter) {
            ops = shorter;
        } else {
            index += 1;
        }
    }
    ops
}

#[test]
fn the_server_agrees_with_the_reference_model() {
    let mut random = fastrand::Rng::with_seed(0x5eed_0fa9_1c00);
    for case in 0..500 {
        let count = 1 + random.usize(..150);
        let ops: Vec<Op> = (0..count).map(|_| random_op(&mut random)).collect();
        if catch_unwind(AssertUnwindSafe(|| run(&ops))).is_err() {
            let minimal = shrink(ops);
            eprintln!("case {case} fails; a shortest failing sequence: {minimal:#?}");
            run(&minimal);
        }
    }
}
