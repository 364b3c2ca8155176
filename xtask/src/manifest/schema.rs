//! The manifest as written: serde types that keep every value's position, so that
//! [`super::check`] can point at the offending text. Numbers stay `i64` (TOML's integer
//! type) and sizes stay unparsed until checked, so that range errors carry the field name.

use super::{ImageFormat, Perms, Trigger, Unclaimed};
use serde::Deserialize;
use toml::Spanned;

/// A TOML integer with its position.
pub(super) type Int = Spanned<i64>;
/// A TOML string with its position.
pub(super) type Text = Spanned<String>;

/// The whole file.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Manifest {
    pub system: SystemTable,
    #[serde(default)]
    pub endpoint: Vec<NamedObject>,
    #[serde(default)]
    pub notification: Vec<NamedObject>,
    #[serde(default)]
    pub memory_region: Vec<MemoryRegion>,
    #[serde(default)]
    pub irq: Vec<Irq>,
    #[serde(default)]
    pub component: Vec<Component>,
    #[serde(default)]
    pub vm: Vec<Vm>,
}

/// `[system]`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct SystemTable {
    pub name: Text,
    pub cpus: Int,
    pub memory: Spanned<Size>,
    pub timeslice_us: Option<Int>,
    pub timeout_seconds: Option<Int>,
    pub pmu_for_components: Option<bool>,
    #[serde(default)]
    pub expect_output: Vec<Text>,
    #[serde(default)]
    pub fail_output: Vec<Text>,
}

/// `[[endpoint]]` and `[[notification]]`: objects with nothing but a name.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct NamedObject {
    pub name: Text,
}

/// `[[memory-region]]`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct MemoryRegion {
    pub name: Text,
    pub size: Spanned<Size>,
    pub phys_addr: Option<Int>,
}

/// `[[irq]]`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Irq {
    pub name: Text,
    pub intid: Int,
    pub trigger: Trigger,
    pub notification: Text,
    pub badge: Int,
    pub cpu: Option<Int>,
}

/// `[[component]]`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Component {
    pub name: Text,
    #[serde(rename = "crate")]
    pub crate_name: Option<Text>,
    pub priority: Int,
    pub cpu: Int,
    pub stack_size: Option<Spanned<Size>>,
    pub heap_size: Option<Spanned<Size>>,
    pub fault_endpoint: Option<Text>,
    pub fault_badge: Option<Int>,
    pub bound_notification: Option<Text>,
    #[serde(default)]
    pub cap: Vec<Cap>,
    #[serde(default)]
    pub map: Vec<Map>,
}

/// `[[component.cap]]`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Cap {
    pub name: Text,
    pub endpoint: Option<Text>,
    pub notification: Option<Text>,
    pub irq: Option<Text>,
    pub control: Option<Spanned<bool>>,
    pub vcpu: Option<Text>,
    pub vcpus: Option<Text>,
    pub console: Option<Spanned<bool>>,
    pub rights: Option<Spanned<Vec<Spanned<Right>>>>,
    pub badge: Option<Int>,
}

/// One entry of a cap's `rights`.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Right {
    Recv,
    Send,
    Call,
    Wait,
    Signal,
}

impl Right {
    /// The name as written in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Right::Recv => "recv",
            Right::Send => "send",
            Right::Call => "call",
            Right::Wait => "wait",
            Right::Signal => "signal",
        }
    }
}

/// `[[component.map]]`: exactly one of `region` and `vm-ram`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Map {
    pub name: Option<Text>,
    pub region: Option<Text>,
    pub vm_ram: Option<Text>,
    pub vaddr: Option<Int>,
    pub perms: Spanned<Perms>,
}

/// `[[vm]]`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Vm {
    pub name: Text,
    pub cpus: Spanned<Vec<Int>>,
    pub priority: Int,
    pub memory: Spanned<Size>,
    pub ram_base: Option<Int>,
    pub image: Option<Text>,
    #[serde(rename = "crate")]
    pub crate_name: Option<Text>,
    pub image_format: Option<Spanned<ImageFormat>>,
    pub initrd: Option<Text>,
    pub cmdline: Option<Text>,
    pub fault_endpoint: Text,
    pub fault_badge: Option<Int>,
    pub unclaimed: Option<Unclaimed>,
    pub vgic_endpoint: Option<Text>,
    pub vgic_badge: Option<Int>,
    #[serde(default)]
    pub route: Vec<Route>,
    #[serde(default)]
    pub passthrough: Vec<Passthrough>,
    pub its: Option<Spanned<ItsTable>>,
}

/// `[vm.its]`: the quotas of the VM's ITS.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct ItsTable {
    pub devices: Option<Int>,
    pub events_per_device: Option<Int>,
    pub collections: Option<Int>,
}

/// `[[vm.passthrough]]`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Passthrough {
    pub irq: Text,
    pub region: Option<Text>,
    pub compatible: Option<Spanned<Vec<Text>>>,
}

/// `[[vm.route]]`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Route {
    pub name: Text,
    pub base: Int,
    pub size: Spanned<Size>,
    pub endpoint: Text,
    pub badge: Option<Int>,
}

/// A size as written: an integer byte count or a string such as `"16K"`.
pub(super) enum Size {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl serde::de::Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size: a byte count or a string such as \"16K\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                Ok(Size::Bytes(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                Ok(Size::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}
