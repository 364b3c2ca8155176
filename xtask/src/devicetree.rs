//! The flattened device tree a guest boots with (its address is the boot vCPU's `x0`).
//!
//! It describes the guest platform of [`crate::guest`]: RAM, one `cpu` node per vCPU
//! started by PSCI over HVC, a GICv3 with redistributors for every vCPU and an ITS, the
//! architected timer, a PL011 UART that is also the console, and each passed-through
//! device that the manifest gives `compatible` strings; `/chosen` carries the command line
//! and the initrd. Property values follow QEMU's `virt` machine, so that
//! guests built for it find what they expect.

use crate::guest::{
    GICD_BASE, GICD_SIZE, GITS_BASE, GITS_SIZE, PL011_BASE, PL011_SIZE, mpidr, redistributors,
};
use crate::manifest::{Trigger, Vm};
use std::ops::Range;
use vm_fdt::FdtWriter;

/// First cell of a GIC interrupt specifier: a shared peripheral interrupt.
pub const GIC_SPI: u32 = 0;
/// First cell of a GIC interrupt specifier: a private peripheral interrupt.
pub const GIC_PPI: u32 = 1;
/// Third cell: edge-triggered, rising edge.
pub const IRQ_EDGE_RISING: u32 = 1;
/// Third cell: level-sensitive, active high.
pub const IRQ_LEVEL_HIGH: u32 = 4;
/// Third cell: level-sensitive, active low (the architected timer's convention).
pub const IRQ_LEVEL_LOW: u32 = 8;
/// The GIC maintenance interrupt, PPI 9 (INTID 25).
pub const MAINTENANCE_PPI: u32 = 9;
/// The timer's PPIs in the order the binding lists them: secure physical (INTID 29),
/// non-secure physical (30), virtual (27), hypervisor physical (26).
pub const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];
/// The INTID of SPI 0: an SPI's specifier cell is its INTID minus this.
pub const FIRST_SPI_INTID: u32 = 32;
/// The PL011's interrupt, SPI 1 (INTID 33).
pub const PL011_SPI: u32 = 1;
/// Frequency of the fixed clock feeding the PL011 (as on QEMU's `virt`).
pub const APB_CLOCK_HZ: u32 = 24_000_000;

/// Phandles of the nodes that others refer to.
const GIC_PHANDLE: u32 = 1;
const ITS_PHANDLE: u32 = 2;
const CLOCK_PHANDLE: u32 = 3;

/// The device tree blob of `vm`, with `/chosen` naming `initrd` (guest-physical).
pub fn build(vm: &Vm, initrd: Option<Range<u64>>) -> anyhow::Result<Vec<u8>> {
    let strings = |values: &[&str]| values.iter().map(|value| value.to_string()).collect::<Vec<_>>();
    let vcpus = vm.cpus.len();
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_string("model", &format!("{} (virtual machine)", vm.name))?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let chosen = fdt.begin_node("chosen")?;
    if let Some(cmdline) = &vm.cmdline {
        fdt.property_string("bootargs", cmdline)?;
    }
    let uart_name = format!("pl011@{PL011_BASE:x}");
    fdt.property_string("stdout-path", &format!("/{uart_name}"))?;
    if let Some(initrd) = initrd {
        fdt.property_u64("linux,initrd-start", initrd.start)?;
        fdt.property_u64("linux,initrd-end", initrd.end)?;
    }
    fdt.end_node(chosen)?;

    let memory = fdt.begin_node(&format!("memory@{:x}", vm.ram_base))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[vm.ram_base, vm.memory])?;
    fdt.end_node(memory)?;

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for index in 0..vcpus {
        let affinity = mpidr(index);
        let cpu = fdt.begin_node(&format!("cpu@{affinity:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,armv8")?;
        fdt.property_u32("reg", affinity as u32)?;
        fdt.property_string("enable-method", "psci")?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;

    let psci = fdt.begin_node("psci")?;
    fdt.property_string_list("compatible", strings(&["arm,psci-1.0", "arm,psci-0.2"]))?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)?;

    let gic = fdt.begin_node(&format!("intc@{GICD_BASE:x}"))?;
    fdt.property_string("compatible", "arm,gic-v3")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_null("ranges")?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("#redistributor-regions", 1)?;
    let redistributors = redistributors(vcpus);
    fdt.property_array_u64("reg", &[GICD_BASE, GICD_SIZE, redistributors.base, redistributors.size])?;
    fdt.property_array_u32("interrupts", &[GIC_PPI, MAINTENANCE_PPI, IRQ_LEVEL_HIGH])?;
    fdt.property_phandle(GIC_PHANDLE)?;
    let its = fdt.begin_node(&format!("its@{GITS_BASE:x}"))?;
    fdt.property_string("compatible", "arm,gic-v3-its")?;
    fdt.property_null("msi-controller")?;
    fdt.property_u32("#msi-cells", 1)?;
    fdt.property_array_u64("reg", &[GITS_BASE, GITS_SIZE])?;
    fdt.property_phandle(ITS_PHANDLE)?;
    fdt.end_node(its)?;
    fdt.end_node(gic)?;

    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    let interrupts: Vec<u32> = TIMER_PPIS.iter().flat_map(|&ppi| [GIC_PPI, ppi, IRQ_LEVEL_LOW]).collect();
    fdt.property_array_u32("interrupts", &interrupts)?;
    fdt.end_node(timer)?;

    let clock = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", APB_CLOCK_HZ)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(CLOCK_PHANDLE)?;
    fdt.end_node(clock)?;

    let uart = fdt.begin_node(&uart_name)?;
    fdt.property_string_list("compatible", strings(&["arm,pl011", "arm,primecell"]))?;
    fdt.property_array_u64("reg", &[PL011_BASE, PL011_SIZE])?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, PL011_SPI, IRQ_LEVEL_HIGH])?;
    fdt.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
    fdt.property_string_list("clock-names", strings(&["uartclk", "apb_pclk"]))?;
    fdt.end_node(uart)?;

    for passthrough in &vm.passthroughs {
        let Some(device) = passthrough.device.as_ref().filter(|device| !device.compatible.is_empty()) else {
            continue;
        };
        let node = fdt.begin_node(&format!("{}@{:x}", device.name, device.base))?;
        fdt.property_string_list("compatible", device.compatible.clone())?;
        fdt.property_array_u64("reg", &[device.base, device.size])?;
        let sense = match passthrough.trigger {
            Trigger::Level => IRQ_LEVEL_HIGH,
            Trigger::Edge => IRQ_EDGE_RISING,
        };
        fdt.property_array_u32("interrupts", &[GIC_SPI, passthrough.intid - FIRST_SPI_INTID, sense])?;
        if device.compatible.iter().any(|compatible| compatible == "arm,primecell") {
            // An AMBA primecell's driver asks for its bus clock.
            fdt.property_u32("clocks", CLOCK_PHANDLE)?;
            fdt.property_string("clock-names", "apb_pclk")?;
        }
        fdt.end_node(node)?;
    }

    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}
