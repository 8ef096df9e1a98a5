//! CPU registers from the HMP command `info registers -a`.
//!
//! QEMU prints one block per vCPU, starting with a `CPU#N` line. An AArch64 CPU's block has
//! `PC=...`, `X00=...` to `X30=...`, `SP=...` and `PSTATE=...` fields. A RISC-V CPU's block
//! has `name value` pairs: ` pc       ffffffff80002b2c`, one line per CSR (` satp     8000...`)
//! and four general registers a line (` x1/ra    ffffffff8000a3d0 x2/sp    ...`). An x86 CPU's has
//! `KEY=hex` fields (`RAX=...`, `R8 =...`, `CR3=...`, `EFER=...`; `EAX=...` and `EIP=...`
//! while a CPU is not in 64-bit mode) and one line per segment register:
//! `CS =0010 0000000000000000 ffffffff 00af9b00 ...` (selector, base, limit, flags). The
//! flags are the high dword of a segment descriptor, the layout of
//! [`X86Registers::cs_flags`].

use crate::connector::cpu_state::{AArch64Registers, RiscVRegisters, X86RegisterSet, X86Registers};

/// The `KEY=value` fields of one line; `R8 =x` (QEMU pads short names) counts as `R8=x`.
fn fields(line: &str) -> Vec<(&str, &str)> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token.split_once('=') {
            Some(("", value)) if i > 0 => out.push((tokens[i - 1], value)),
            Some((key, value)) if !key.is_empty() => out.push((key, value)),
            _ => {}
        }
    }
    out
}

/// A segment line: `NAME =selector base limit flags ...`; `None` for other lines.
fn segment(line: &str) -> Option<(&str, [u64; 4])> {
    let (name, rest) = line.split_once('=')?;
    let name = name.trim_end();
    let mut values = rest.split_whitespace().map(|t| u64::from_str_radix(t, 16).ok());
    let parsed = [values.next()??, values.next()??, values.next()??, values.next()??];
    Some((name, parsed))
}

/// Fills `regs` from one line of a CPU block.
fn parse_line(regs: &mut X86Registers, line: &str) {
    if let Some((name, [selector, base, _limit, flags])) = segment(line) {
        let selector = selector as u16;
        let seen = match name {
            "ES" => {
                regs.es = selector;
                true
            }
            "CS" => {
                regs.cs = selector;
                regs.cs_flags = flags as u32;
                regs.valid |= X86RegisterSet::CS_FLAGS;
                true
            }
            "SS" => {
                regs.ss = selector;
                true
            }
            "DS" => {
                regs.ds = selector;
                true
            }
            "FS" => {
                regs.fs = selector;
                regs.fs_base = base;
                true
            }
            "GS" => {
                regs.gs = selector;
                regs.gs_base = base;
                regs.valid |= X86RegisterSet::SEGMENT_BASES;
                true
            }
            _ => false,
        };
        if seen {
            return;
        }
    }
    for (key, value) in fields(line) {
        let Ok(value) = u64::from_str_radix(value, 16) else { continue };
        let slot = match key.trim_start_matches(['R', 'E']) {
            _ if key == "EFER" => {
                regs.valid |= X86RegisterSet::EFER;
                &mut regs.efer
            }
            "AX" => &mut regs.rax,
            "BX" => &mut regs.rbx,
            "CX" => &mut regs.rcx,
            "DX" => &mut regs.rdx,
            "SI" => &mut regs.rsi,
            "DI" => &mut regs.rdi,
            "BP" => &mut regs.rbp,
            "SP" => &mut regs.rsp,
            "IP" => &mut regs.rip,
            "FL" => &mut regs.rflags,
            _ => match key {
                "R8" => &mut regs.r8,
                "R9" => &mut regs.r9,
                "R10" => &mut regs.r10,
                "R11" => &mut regs.r11,
                "R12" => &mut regs.r12,
                "R13" => &mut regs.r13,
                "R14" => &mut regs.r14,
                "R15" => &mut regs.r15,
                "CR0" => &mut regs.cr0,
                "CR2" => &mut regs.cr2,
                "CR3" => &mut regs.cr3,
                "CR4" => &mut regs.cr4,
                _ => continue,
            },
        };
        *slot = value;
    }
}

/// The lines of each CPU's block in `text`, in CPU order.
fn cpu_blocks(text: &str) -> Vec<Vec<&str>> {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("CPU#") {
            blocks.push(Vec::new());
        } else if let Some(block) = blocks.last_mut() {
            block.push(line);
        }
    }
    blocks
}

/// The registers of every AArch64 CPU in the output of `info registers -a`, in CPU order;
/// fields a block lacks stay zero.
pub(super) fn parse_aarch64_registers(text: &str) -> Vec<AArch64Registers> {
    cpu_blocks(text)
        .into_iter()
        .map(|block| {
            let mut regs = AArch64Registers::default();
            for (key, value) in block.iter().flat_map(|line| fields(line)) {
                let Ok(value) = u64::from_str_radix(value, 16) else { continue };
                let slot = match key {
                    "PC" => &mut regs.pc,
                    "SP" => &mut regs.sp,
                    "PSTATE" => &mut regs.pstate,
                    _ => match key.strip_prefix('X').and_then(|n| n.parse::<usize>().ok()) {
                        Some(n) if n < regs.x.len() => &mut regs.x[n],
                        _ => continue,
                    },
                };
                *slot = value;
            }
            regs
        })
        .collect()
}

/// The registers of every RISC-V CPU in the output of `info registers -a`, in CPU order;
/// fields a block lacks stay zero, and `satp` counts as known only if the block has it.
pub(super) fn parse_riscv_registers(text: &str) -> Vec<RiscVRegisters> {
    cpu_blocks(text)
        .into_iter()
        .map(|block| {
            let mut regs = RiscVRegisters::default();
            let tokens: Vec<&str> = block.iter().flat_map(|line| line.split_whitespace()).collect();
            for pair in tokens.windows(2) {
                let Ok(value) = u64::from_str_radix(pair[1], 16) else { continue };
                let slot = match pair[0] {
                    "pc" => &mut regs.pc,
                    "satp" => {
                        regs.satp_valid = true;
                        &mut regs.satp
                    }
                    // `x1/ra`: the number before the ABI name; `x0` stays zero.
                    name => match name.split_once('/').and_then(|(x, _)| x.strip_prefix('x')?.parse::<usize>().ok()) {
                        Some(n) if (1..regs.x.len()).contains(&n) => &mut regs.x[n],
                        _ => continue,
                    },
                };
                *slot = value;
            }
            regs
        })
        .collect()
}

/// The registers of every x86 CPU in the output of `info registers -a`, in CPU order. A block
/// counts as having general registers if it has `RIP`/`EIP`, control registers if it has
/// `CR0`, `CR3` and `CR4`, selectors if it has all six segment lines; long mode follows
/// from `EFER.LMA`.
pub(super) fn parse_registers(text: &str) -> Vec<X86Registers> {
    let mut cpus: Vec<X86Registers> = Vec::new();
    for block in cpu_blocks(text) {
        let mut regs = X86Registers::default();
        for line in &block {
            parse_line(&mut regs, line);
        }
        let has = |keys: &[&str]| keys.iter().all(|k| block.iter().any(|l| fields(l).iter().any(|(key, _)| key == k)));
        regs.valid.set(X86RegisterSet::GENERAL, has(&["RIP"]) || has(&["EIP"]));
        regs.valid.set(X86RegisterSet::CONTROL, has(&["CR0", "CR3", "CR4"]));
        regs.valid.set(X86RegisterSet::SELECTORS, has(&["ES", "CS", "SS", "DS", "FS", "GS"]));
        regs.infer_long_mode(false);
        cpus.push(regs);
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::cpu_state::X86ArchHint;
    use crate::types::Address;

    /// `info registers -a` of a QEMU 7.2 guest idling in a 64-bit Linux kernel (cut short).
    const LONG_MODE: &str = "CPU#0\r
RAX=000000000001ad40 RBX=0000000000000000 RCX=0000000000000000 RDX=4000000000000000\r
RSI=0000000000000083 RDI=0000000000000294 RBP=ffffffff82a1aa40 RSP=ffffffff82a03e98\r
R8 =0000000000022e80 R9 =00000000314dfc52 R10=00000000fffffffb R11=0000000000000001\r
R12=0000000000000000 R13=0000000000000000 R14=ffffffff82a1a110 R15=0000000000014790\r
RIP=ffffffff81a17a0b RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r
ES =0000 0000000000000000 00000000 00000000\r
CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]\r
SS =0018 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r
DS =0000 0000000000000000 00000000 00000000\r
FS =0000 0000000000000000 00000000 00000000\r
GS =0000 ffff88800f800000 00000000 00000000\r
LDT=0000 0000000000000000 00000000 00008200 DPL=0 LDT\r
TR =0040 fffffe0000003000 00004087 00008900 DPL=0 TSS64-avl\r
GDT=     fffffe0000001000 0000007f\r
IDT=     fffffe0000000000 00000fff\r
CR0=80050033 CR2=00000000005794a9 CR3=00000000054d4000 CR4=000006b0\r
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 \r
DR6=00000000ffff0ff0 DR7=0000000000000400\r
EFER=0000000000000d01\r
FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80\r
XMM00=0000000000000000 0000000000000000 XMM01=0000000000000000 40f86a0000000000\r
";

    /// A second CPU still in 32-bit protected mode without paging (format of QEMU 7.2).
    const PROTECTED_MODE: &str = "CPU#1\r
EAX=00000001 EBX=00000002 ECX=00000003 EDX=00000004\r
ESI=00000005 EDI=00000006 EBP=00000007 ESP=00000008\r
EIP=000f1234 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\r
ES =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r
CS =0008 00000000 ffffffff 00cf9b00 DPL=0 CS32 [-RA]\r
SS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r
DS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r
FS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r
GS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r
CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000\r
EFER=0000000000000000\r
";

    #[test]
    fn long_mode_cpu() {
        let cpus = parse_registers(LONG_MODE);
        assert_eq!(cpus.len(), 1);
        let r = cpus[0];
        assert_eq!((r.rax, r.rdx, r.r8, r.r9, r.r15), (0x1ad40, 0x4000_0000_0000_0000, 0x22e80, 0x314d_fc52, 0x14790));
        assert_eq!((r.rip, r.rflags, r.rsp), (0xffff_ffff_81a1_7a0b, 0x246, 0xffff_ffff_82a0_3e98));
        assert_eq!((r.cs, r.ss, r.cs_flags), (0x10, 0x18, 0x00af_9b00));
        assert_eq!((r.gs_base, r.fs_base), (0xffff_8880_0f80_0000, 0));
        assert_eq!((r.cr0, r.cr2, r.cr3, r.cr4, r.efer), (0x8005_0033, 0x5794a9, 0x54d_4000, 0x6b0, 0xd01));
        let all = X86RegisterSet::GENERAL
            | X86RegisterSet::SELECTORS
            | X86RegisterSet::CS_FLAGS
            | X86RegisterSet::SEGMENT_BASES
            | X86RegisterSet::CONTROL
            | X86RegisterSet::EFER
            | X86RegisterSet::LONG_MODE;
        assert_eq!(r.valid, all);
        assert_eq!(r.arch_hint(), X86ArchHint::X86_64);
        assert_eq!(r.page_table_root(), Some(Address::new(0x54d_4000)));
    }

    #[test]
    fn several_cpus_and_32_bit_format() {
        let text = format!("{LONG_MODE}{PROTECTED_MODE}");
        let cpus = parse_registers(&text);
        assert_eq!(cpus.len(), 2);
        let r = cpus[1];
        assert_eq!((r.rax, r.rbx, r.rsp, r.rip, r.rflags), (1, 2, 8, 0xf1234, 2));
        assert_eq!((r.cs, r.gs, r.cs_flags), (8, 0x10, 0x00cf_9b00));
        assert!(!r.valid.contains(X86RegisterSet::LONG_MODE));
        assert_eq!(r.arch_hint(), X86ArchHint::NoPaging);
        assert_eq!(cpus[0].arch_hint(), X86ArchHint::X86_64);
    }

    /// `info registers -a` of a QEMU 7.2 `-cpu cortex-a72` guest idling in Linux (cut short).
    const AARCH64: &str = "CPU#0\r
 PC=ffffa2b6c4e1f0b4 X00=0000000000000000 X01=ffff00000fd36a00\r
X02=0000000000000001 X03=0000000000000000 X04=0000000000000000\r
X27=0000000000000000 X28=0000000000000000 X29=ffffa2b6c6773d80\r
X30=ffffa2b6c4e1f0a8  SP=ffffa2b6c6773d80\r
PSTATE=60400005 -ZC- EL1h    FPCR=00000000 FPSR=00000000\r
Q00=0000000000000000:0000000000000000 Q01=0000000000000000:0000000000000000\r
";

    #[test]
    fn aarch64_cpu() {
        let cpus = parse_aarch64_registers(&format!("{AARCH64}{AARCH64}"));
        assert_eq!(cpus.len(), 2);
        let r = cpus[1];
        assert_eq!((r.pc, r.sp, r.pstate), (0xffff_a2b6_c4e1_f0b4, 0xffff_a2b6_c677_3d80, 0x6040_0005));
        assert_eq!(
            (r.x[1], r.x[2], r.x[29], r.x[30]),
            (0xffff_0000_0fd3_6a00, 1, 0xffff_a2b6_c677_3d80, 0xffff_a2b6_c4e1_f0a8)
        );
        assert!(parse_aarch64_registers("PC=0000000000001000\n").is_empty());
        // An x86 block gives no AArch64 values (its `SP`-like keys are `RSP`, `ESP`).
        assert_eq!(parse_aarch64_registers(LONG_MODE)[0], AArch64Registers::default());
    }

    /// `info registers -a` of a QEMU 7.2 `qemu-system-riscv64 -M virt` guest in Linux (cut
    /// short: most CSRs and the floating-point registers left out).
    const RISCV: &str = "CPU#0\r
 V      =   0\r
 pc       ffffffff80a1c8be\r
 mhartid  0000000000000000\r
 satp     8000000000082c6b\r
 x0/zero  0000000000000000 x1/ra    ffffffff80a1c8ba x2/sp    ffffffff81803e90 x3/gp    ffffffff81a4c1e0\r
 x28/t3   0000000000000004 x29/t4   0000000000000000 x30/t5   0000000000000001 x31/t6   ffffffff81a0a350\r
 f0/ft0   0000000000000007 f1/ft1   0000000000000000 f2/ft2   0000000000000000 f3/ft3   0000000000000000\r
";

    #[test]
    fn riscv_cpu() {
        let cpus = parse_riscv_registers(&format!("{RISCV}{RISCV}"));
        assert_eq!(cpus.len(), 2);
        let r = cpus[1];
        assert_eq!(
            (r.pc, r.sp(), r.satp, r.satp_valid),
            (0xffff_ffff_80a1_c8be, 0xffff_ffff_8180_3e90, 0x8000_0000_0008_2c6b, true)
        );
        assert_eq!(
            (r.x[0], r.x[1], r.x[3], r.x[28], r.x[31]),
            (0, 0xffff_ffff_80a1_c8ba, 0xffff_ffff_81a4_c1e0, 4, 0xffff_ffff_81a0_a350)
        );
        let no_satp = parse_riscv_registers("CPU#0\n pc       0000000000001000\n");
        assert_eq!((no_satp[0].pc, no_satp[0].satp_valid), (0x1000, false));
        // An AArch64 block gives no RISC-V values (its keys are `PC=`, `X01=`).
        assert_eq!(parse_riscv_registers(AARCH64)[0], RiscVRegisters::default());
    }

    #[test]
    fn no_cpu_blocks() {
        assert!(parse_registers("").is_empty());
        assert!(parse_registers("RAX=0000000000000001\n").is_empty());
        let partial = parse_registers("CPU#0\nRIP=0000000000001000\n");
        assert_eq!(partial[0].valid, X86RegisterSet::GENERAL);
        assert_eq!(partial[0].arch_hint(), X86ArchHint::Unknown);
    }
}
