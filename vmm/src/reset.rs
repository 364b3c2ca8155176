//! Guest RAM back to its state at boot, from the VM's image (see [`ipc::vm_image`]).

use ipc::vm_image::{Boot, VmImage};

/// Rewrites `ram` (guest RAM from guest-physical `ram_ipa`) as the VM's `image` says:
/// its runs copied in, every other byte zero. Returns how the boot vCPU starts, or
/// `None` (and `ram` untouched) if the image is malformed or a run lies outside `ram`.
pub fn restore(image: &[u8], ram: &mut [u8], ram_ipa: u64) -> Option<Boot> {
    let image = VmImage::parse(image)?;
    let offset = |ipa: u64| usize::try_from(ipa.checked_sub(ram_ipa)?).ok();
    let fits = |ipa: u64, length: usize| offset(ipa)?.checked_add(length).filter(|&end| end <= ram.len());
    if image.runs().any(|(run, bytes)| fits(run.ipa, bytes.len()).is_none()) {
        return None;
    }
    let mut cursor = 0;
    for (run, bytes) in image.runs() {
        let start = offset(run.ipa)?;
        // Runs come in address order from xtask; zero what lies between them.
        if cursor < start {
            ram[cursor..start].fill(0);
        }
        ram[start..start + bytes.len()].copy_from_slice(bytes);
        cursor = cursor.max(start + bytes.len());
    }
    ram[cursor..].fill(0);
    Some(image.boot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc::vm_image::pack;

    const RAM_IPA: u64 = 0x4000_0000;

    #[test]
    fn the_runs_come_back_and_everything_else_is_zeroed() {
        let boot = Boot { entry: RAM_IPA + 4, x0: RAM_IPA + 12 };
        let image = pack(boot, &[(RAM_IPA + 4, b"code"), (RAM_IPA + 12, b"dtb")]);
        let mut ram = vec![0xaa; 20];
        assert_eq!(restore(&image, &mut ram, RAM_IPA), Some(boot));
        assert_eq!(ram, b"\0\0\0\0code\0\0\0\0dtb\0\0\0\0\0");
    }

    #[test]
    fn an_image_that_does_not_fit_the_ram_changes_nothing() {
        let boot = Boot { entry: RAM_IPA, x0: RAM_IPA };
        for ipa in [RAM_IPA + 18, RAM_IPA - 1, 0] {
            let mut ram = vec![0xaa; 20];
            assert_eq!(restore(&pack(boot, &[(ipa, b"code")]), &mut ram, RAM_IPA), None, "{ipa:#x}");
            assert_eq!(ram, [0xaa; 20]);
        }
        let mut ram = vec![0xaa; 20];
        assert_eq!(restore(b"not an image", &mut ram, RAM_IPA), None);
    }
}
