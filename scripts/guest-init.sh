#!/bin/sh
# /init (PID 1) of the memflow fixture guest; runs under busybox ash.
# Built into the initramfs by `cargo xtask fixtures` and the live guests (xtask/src/guest.rs).
#
# It starts a few distinctive processes, reports ground truth about the
# running kernel on the serial console (ttyS0) between
#   ==== MEMFLOW-BEGIN <section> ====
#   ==== MEMFLOW-END <section> ====
# lines, streams the complete /proc/kallsyms to the second serial port
# (ttyS1, saved by the host as kallsyms.txt), takes AVML captures when the host
# provides for them, prints MEMFLOW-GUEST-READY and then idles forever so the host
# can take a memory dump.
#
# shellcheck disable=SC3038  # busybox ash supports "exec -a", dash does not

export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
hostname memflow-guest

# Kernel modules shipped in the initramfs (GUEST_MODULES in xtask/src/kernel.rs), so
# the kernel has a module list to find.
for module in /lib/modules/*.ko; do
    [ -e "$module" ] && insmod "$module"
done

# Real kernel addresses in /proc/kallsyms (and %pK) for everyone.
echo 0 > /proc/sys/kernel/kptr_restrict
# Keep late asynchronous kernel messages (crng init, clocksource switch...)
# off the console so they cannot end up inside our sections; they are still
# in the "dmesg" section below.
echo 1 > /proc/sys/kernel/printk

# --------------------------------------------------------------- processes
# Probes: busybox started through a symlink named mfprobe_* (the kernel sets
# comm from the basename of the exec'ed path) with argv[0]="sleep" so that
# busybox runs its sleep applet. One process each, parent = PID 1.
exec -a sleep /bin/mfprobe_alpha 100000 &
exec -a sleep /bin/mfprobe_beta 100000 &

# Marker process: a shell script named mfprobe_marker. It invents a random
# marker in the guest (so the string is not in the initramfs or on the kernel
# command line) and re-execs itself with it, so the marker lives in its argv
# (mm->arg_start..arg_end), its environment (MFPROBE_MARKER) and a shell
# variable on its heap.
cat > /bin/mfprobe_marker <<'EOF'
#!/bin/sh
if [ $# -eq 0 ]; then
    MFPROBE_MARKER="MEMFLOW-MARKER-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    export MFPROBE_MARKER
    exec /bin/mfprobe_marker "$MFPROBE_MARKER"
fi
MARKER_VAR="$1"
while :; do sleep 100000; done
EOF
chmod 755 /bin/mfprobe_marker
/bin/mfprobe_marker &
marker_pid=$!
i=0
until grep -q MEMFLOW-MARKER- "/proc/$marker_pid/cmdline" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 100 ] && echo "mfprobe_marker did not start" && break
    usleep 100000
done

# ----------------------------------------------------------------- report
section() {
    name=$1
    shift
    echo "==== MEMFLOW-BEGIN $name ===="
    "$@" 2>&1
    echo "==== MEMFLOW-END $name ===="
}

# Fixed list of symbols tests may want; names missing from this kernel are
# simply absent from the output.
SYMBOLS="linux_banner init_task init_mm init_pid_ns init_uts_ns init_nsproxy
init_cred init_files init_fs _text _stext _etext _sdata _edata __bss_start
__bss_stop _end __init_begin __init_end _sinittext _einittext __start_rodata
__end_rodata startup_64 secondary_startup_64 start_kernel rest_init
kernel_init phys_base page_offset_base vmalloc_base vmemmap_base
__pgtable_l5_enabled pgdir_shift ptrs_per_p4d swapper_pg_dir init_top_pgt
level4_kernel_pgt level3_kernel_pgt early_top_pgt kallsyms_names
kallsyms_num_syms kallsyms_addresses kallsyms_offsets kallsyms_relative_base
kallsyms_token_table kallsyms_token_index kallsyms_markers
kallsyms_lookup_name __start___ksymtab __stop___ksymtab __start___ksymtab_gpl
__stop___ksymtab_gpl __start___kcrctab sys_call_table ia32_sys_call_table
x32_sys_call_table entry_SYSCALL_64 idt_table __per_cpu_start __per_cpu_end
__per_cpu_offset per_cpu__current_task current_task pcpu_hot cpu_number
nr_cpu_ids modules module_mutex tasklist_lock pid_max schedule do_exit
do_fork kernel_clone _printk printk vfs_read vfs_write commit_creds
prepare_kernel_cred native_write_cr4 kmem_cache_alloc __kmalloc
init_thread_union boot_command_line saved_command_line"

ps_list() { ps -o pid,ppid,comm; }

marker() {
    echo "pid=$marker_pid"
    echo "comm=$(cat /proc/$marker_pid/comm)"
    # Print via a pipeline so PID 1 does not keep a copy in a variable.
    printf 'cmdline='
    tr '\0' ' ' < "/proc/$marker_pid/cmdline"
    echo
    printf 'marker='
    tr '\0' '\n' < "/proc/$marker_pid/cmdline" | grep '^MEMFLOW-MARKER-'
}

kallsyms_sample() {
    # Every listed symbol plus every 2000th line (a spread of T/D/... symbols).
    echo "$SYMBOLS" | awk 'NR == FNR { for (i = 1; i <= NF; i++) want[$i] = 1; next }
        ($3 in want) || (FNR % 2000 == 0)' - /proc/kallsyms
}

kallsyms_full() {
    # Full copy goes out on ttyS1; this section records what was sent.
    if [ -c /dev/ttyS1 ] && stty -F /dev/ttyS1 raw -echo 2>/dev/null; then
        cat /proc/kallsyms > /dev/ttyS1
        echo "port=ttyS1"
    else
        echo "port=none"
    fi
    echo "lines=$(wc -l < /proc/kallsyms)"
    echo "sha256=$(sha256sum < /proc/kallsyms | cut -d' ' -f1)"
}

cpuinfo() {
    grep -E '^(vendor_id|model name|flags|address sizes)' /proc/cpuinfo | sort -u
    if grep -qw la57 /proc/cpuinfo; then echo "la57=yes"; else echo "la57=no"; fi
}

section uname uname -a
section version cat /proc/version
section cmdline cat /proc/cmdline
section cpuinfo cpuinfo
section ps ps_list
section marker marker
section kallsyms kallsyms_sample
section kallsyms-full kallsyms_full
section modules cat /proc/modules
section iomem cat /proc/iomem
section meminfo head -n 3 /proc/meminfo
section dmesg dmesg

# AVML captures of this running guest from /proc/kcore, when the fixture builder shipped
# /bin/avml and two NVMe disks (fixture cloud-4l-avml): LiME on the first disk,
# Snappy-compressed AVML on the second (the host finds where each ends).
avml_captures() {
    avml acquire --source /proc/kcore /dev/nvme0n1
    echo "lime status=$?"
    avml acquire --source /proc/kcore --compress /dev/nvme1n1
    echo "compressed status=$?"
    sync
}
if [ -x /bin/avml ] && [ -b /dev/nvme0n1 ] && [ -b /dev/nvme1n1 ]; then
    section avml avml_captures
fi
echo MEMFLOW-GUEST-READY

# Idle forever; the host dumps memory and then kills QEMU.
while :; do sleep 100000; done
