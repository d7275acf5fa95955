/**
 * The bpftrace program the ebpf source runs. Tracepoints only (no kprobes): they are a stable
 * interface across kernel versions, and they work on kernels built without kprobes.
 *
 * Output (bpftrace `-f json`, one `printf` record per line). Every string that a process controls
 * (argv, file names, comm, cgroup names) is printed as `%rx`, one `\xNN` per byte, so no value can
 * forge a field or a line; the agent decodes and bounds them. Fields are separated by one space:
 *
 *   X <ns> <pid> <ppid> <uid> <cgid> <argvlen> <parent comm>                                   exec
 *   O <ns> <pid> <fs magic> <links> <upper> <exe name> <other cgroup>   where the executable came from (drift; below)
 *   C <ns> <pid> <cgroup leaf>                   its cgroup's name (≤ 128 bytes: cri-containerd-<id>.scope is 85)
 *   F <ns> <pid> <filename>                                               the exec'd path (≤ 200 bytes)
 *   A <ns> <pid> <offset> <argv bytes>                    argv chunk (NUL-separated, ≤ 20 × 200 bytes)
 *   N <ns> <pid> <uid> <cgid> <kind> <proto> <laddr> <lport> <raddr> <rport> <comm> <cgroup leaf>
 *   Q <ns> <pid> <uid> <cgid> <length> <cgroup leaf>                     a DNS answer received (≤ 600 bytes kept)
 *   R <ns> <pid> <offset> <bytes>                                   its bytes (≤ 3 chunks × 200 bytes)
 *
 * `ns` is CLOCK_MONOTONIC (bpf_ktime_get_ns); an exec's lines share (ns, pid). An address is 4 or 16
 * raw bytes, or (read from a socket's u32 field) a decimal u32 in the host's byte order; ports are in
 * host order. `kind` is connect, accept or listen; UDP sends to a new peer are connects over udp.
 * The cgroup leaf is the process's cgroup v2 directory name, or, when it sits in the v2 root (cgroup v1
 * nodes), its memory controller's (index $1). One leaf, not both: BPF's 512-byte stack holds no more. The v1 leaf is the memory controller's cgroup (index $1), for nodes
 * where containers live in cgroup v1.
 *
 * - Executable origin (the O record, decode.ts originOf): read in the kernel at exec, from the file the
 *   new program runs (`mm->exe_file`, set by begin_new_exec before this tracepoint), because only
 *   there is it reliable: a dropped binary often runs for milliseconds, and by the time userspace
 *   reads /proc/<pid>/exe (or the container's upperdir) the process, its file or both may be gone, or
 *   the path may name another file. Printed: the file's superblock magic (overlayfs 0x794c7630), its
 *   link count (0: a memfd or a deleted file), whether its overlay inode has an upper dentry (1: the
 *   file was written or changed after the container started; 0: a lower layer, the image; 2: not
 *   overlayfs, or the layout check failed), the first 16 bytes of its dentry name (`memfd:…` for
 *   memfd_create files), and whether the parent runs on the host side of the exec'ing process (1:
 *   the parent sits in another cgroup — its cgroup v2 directory, or its memory controller's at the v2
 *   root — and in the same mount namespace). That last field is what tells runc's cloned self (runc
 *   re-exec'd by the shim, `runc init` by runc: both still in the host's mount namespace) from a
 *   process of the container naming its own memfd `runc_cloned`: the name alone is the caller's
 *   choice. The cgroup alone is not enough: a container's first process has the shim, in another
 *   cgroup, for parent; but it lives in the container's mount namespace, and no process of a
 *   container can join the host's. The upper dentry sits in `struct ovl_inode` around the VFS inode; bpftrace
 *   0.17 has no offsetof, so the program steps back by the fields before `vfs_inode` (four 8-byte
 *   words since Linux 4.19: a union of pointers, `redirect`, `version`, `flags`) and uses that only
 *   when the stepped-back struct's own `vfs_inode` has this inode's number and superblock: on a
 *   kernel laid out otherwise the check fails and the origin is `unknown`, never a wrong answer.
 *   The exec probe already uses all of BPF's 512-byte stack (the argv chunks), so O comes from a second
 *   probe on the same tracepoint, which the kernel runs right after the first for the same exec, and
 *   which takes that exec's time from the first through @xns (by thread). The decoder waits for it.
 * - TCP connect and listen: sock:inet_sock_set_state, CLOSE → SYN_SENT / LISTEN, which runs in the
 *   calling process (kernel state: no user memory to race). The source port of a connect is not chosen
 *   yet (0); Driftwatch keeps only the service port anyway.
 * - TCP accept: the accept/accept4 syscall's exit, the new fd's socket read from the fd table.
 * - UDP: connect() on a UDP socket (its peer read from the socket after the call) and sendto/sendmsg
 *   with an address (read from the caller's memory at entry). Deduplicated per cgroup and peer in
 *   bounded maps (BPFTRACE_MAP_KEYS_MAX) cleared every minute; the agent deduplicates again.
 * - DNS answers (dns.ts parses them, so that a connect can carry the name its address came from):
 *   the receive syscalls of stub resolvers on UDP sockets: recvfrom (glibc, musl), read (Go's resolver
 *   on a connected socket), recvmsg with one iovec (libuv, systemd-resolved). Entry keeps the user
 *   buffer only when the fd is a UDP socket (an inode mode and a protocol read: no map write for files,
 *   pipes or TCP); exit reads the first 8 bytes and prints only what has a DNS response header (QR set,
 *   opcode QUERY, rcode NOERROR, one question, at least one answer). At most 600 bytes are printed:
 *   bpftrace 0.17 caps a buf() at 200 bytes (BPFTRACE_STRLEN's maximum: strings live on the 512-byte
 *   stack), so three chunks. TCP DNS, recvmmsg, readv and io_uring are not traced. These probes cost about
 *   0.5 µs per read() on the node (measured with a million one-byte reads), so `ebpf:?dns=off` leaves
 *   them out (ebpfProgram below).
 */

/** The program text; `$1` is the memory controller's index in the kernel's cgroup subsystems. */
export const EBPF_PROGRAM = String.raw`
tracepoint:sched:sched_process_exec
{
  $ns = nsecs;
  $t = curtask;
  $kn = (struct kernfs_node *)$t->cgroups->dfl_cgrp->kn;
  if ($t->cgroups->dfl_cgrp->level == 0) { $kn = (struct kernfs_node *)$t->cgroups->subsys[$1]->cgroup->kn; }
  $s = $t->mm->arg_start;
  $n = $t->mm->arg_end - $s;
  if ($n > 4000) { $n = 4000; }
  printf("X %llu %d %d %u %llu %llu %rx\n", $ns, pid, $t->real_parent->tgid, uid, cgroup, $n, buf($t->real_parent->comm, 16));
  @xns[tid] = $ns;
  printf("C %llu %d %rx\n", $ns, pid, buf($kn->name, 128));
  printf("F %llu %d %rx\n", $ns, pid, buf(args->filename, 200));
  $o = (uint64)0;
  unroll(20) {
    if ($o < $n) {
      $c = $n - $o;
      if ($c > 200) { $c = 200; }
      printf("A %llu %d %llu %rx\n", $ns, pid, $o, buf(uptr($s + $o), $c));
    }
    $o += 200;
  }
}

// The executable's origin (the O record): a probe of its own on the same tracepoint, because the one
// above uses all of BPF's 512-byte stack. It runs right after it for the same exec (programs of one
// tracepoint run in attach order, in one call) and takes that exec's time from @xns.
tracepoint:sched:sched_process_exec
{
  $ns = @xns[tid];
  delete(@xns[tid]);
  $xf = curtask->mm->exe_file;
  $xi = $xf->f_inode;
  $magic = $xi->i_sb->s_magic;
  $upper = (uint64)2;
  if ($magic == 0x794c7630) {
    $oi = (struct ovl_inode *)((uint64)$xi - 32);
    if ($oi->vfs_inode.i_ino == $xi->i_ino && $oi->vfs_inode.i_sb == $xi->i_sb) { $upper = $oi->__upperdentry != 0 ? 1 : 0; }
  }
  $kn = (struct kernfs_node *)curtask->cgroups->dfl_cgrp->kn;
  if (curtask->cgroups->dfl_cgrp->level == 0) { $kn = (struct kernfs_node *)curtask->cgroups->subsys[$1]->cgroup->kn; }
  $p = curtask->real_parent;
  $pkn = (struct kernfs_node *)$p->cgroups->dfl_cgrp->kn;
  if ($p->cgroups->dfl_cgrp->level == 0) { $pkn = (struct kernfs_node *)$p->cgroups->subsys[$1]->cgroup->kn; }
  $outside = (uint64)$pkn != (uint64)$kn && (uint64)curtask->nsproxy->mnt_ns == (uint64)$p->nsproxy->mnt_ns ? 1 : 0;
  printf("O %llu %d %lx %u %llu %rx %d\n", $ns, pid, $magic, $xi->__i_nlink, $upper, buf($xf->f_path.dentry->d_name.name, 16), $outside);
}

tracepoint:sock:inet_sock_set_state
/args->protocol == 6 && args->oldstate == 7 && (args->newstate == 2 || args->newstate == 10)/
{
  $kn = (struct kernfs_node *)curtask->cgroups->dfl_cgrp->kn;
  if (curtask->cgroups->dfl_cgrp->level == 0) { $kn = (struct kernfs_node *)curtask->cgroups->subsys[$1]->cgroup->kn; }
  if (args->family == 2) {
    printf("N %llu %d %u %llu %s tcp %rx %u %rx %u %rx %rx\n", nsecs, pid, uid, cgroup, args->newstate == 2 ? "connect" : "listen", buf(args->saddr, 4), args->sport, buf(args->daddr, 4), args->dport, buf(comm, 16), buf($kn->name, 128));
  } else {
    printf("N %llu %d %u %llu %s tcp %rx %u %rx %u %rx %rx\n", nsecs, pid, uid, cgroup, args->newstate == 2 ? "connect" : "listen", buf(args->saddr_v6, 16), args->sport, buf(args->daddr_v6, 16), args->dport, buf(comm, 16), buf($kn->name, 128));
  }
}

tracepoint:syscalls:sys_exit_accept4,
tracepoint:syscalls:sys_exit_accept
/args->ret >= 0/
{
  $fdt = curtask->files->fdt;
  $fd = (uint64)args->ret;
  if ($fd < (uint64)$fdt->max_fds) {
    $sk = ((struct socket *)(*($fdt->fd + $fd))->private_data)->sk;
    $f = $sk->__sk_common.skc_family;
    if ($sk->sk_protocol == 6 && ($f == 2 || $f == 10)) {
      $kn = (struct kernfs_node *)curtask->cgroups->dfl_cgrp->kn;
      if (curtask->cgroups->dfl_cgrp->level == 0) { $kn = (struct kernfs_node *)curtask->cgroups->subsys[$1]->cgroup->kn; }
      $dport = (($sk->__sk_common.skc_dport & 0xff) << 8) | ($sk->__sk_common.skc_dport >> 8);
      if ($f == 2) {
        printf("N %llu %d %u %llu accept tcp %u %u %u %u %rx %rx\n", nsecs, pid, uid, cgroup, $sk->__sk_common.skc_rcv_saddr, $sk->__sk_common.skc_num, $sk->__sk_common.skc_daddr, $dport, buf(comm, 16), buf($kn->name, 128));
      } else {
        printf("N %llu %d %u %llu accept tcp %rx %u %rx %u %rx %rx\n", nsecs, pid, uid, cgroup, buf($sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16), $sk->__sk_common.skc_num, buf($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16), $dport, buf(comm, 16), buf($kn->name, 128));
      }
    }
  }
}

tracepoint:syscalls:sys_enter_connect
{
  @cfd[tid] = args->fd + 1;
}

tracepoint:syscalls:sys_exit_connect
/@cfd[tid] != 0/
{
  $fd = (uint64)(@cfd[tid] - 1);
  delete(@cfd[tid]);
  $fdt = curtask->files->fdt;
  if (args->ret == 0 && $fd < (uint64)$fdt->max_fds) {
    $sk = ((struct socket *)(*($fdt->fd + $fd))->private_data)->sk;
    $f = $sk->__sk_common.skc_family;
    if ($sk->sk_protocol == 17) {
      $dport = (($sk->__sk_common.skc_dport & 0xff) << 8) | ($sk->__sk_common.skc_dport >> 8);
      $kn = (struct kernfs_node *)curtask->cgroups->dfl_cgrp->kn;
      if (curtask->cgroups->dfl_cgrp->level == 0) { $kn = (struct kernfs_node *)curtask->cgroups->subsys[$1]->cgroup->kn; }
      if ($f == 2 && @udp4[cgroup, $sk->__sk_common.skc_daddr, $dport] == 0) {
        @udp4[cgroup, $sk->__sk_common.skc_daddr, $dport] = 1;
        printf("N %llu %d %u %llu connect udp %u %u %u %u %rx %rx\n", nsecs, pid, uid, cgroup, $sk->__sk_common.skc_rcv_saddr, $sk->__sk_common.skc_num, $sk->__sk_common.skc_daddr, $dport, buf(comm, 16), buf($kn->name, 128));
      }
      if ($f == 10 && @udp6[cgroup, $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0], $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1], $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2], $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3], $dport] == 0) {
        @udp6[cgroup, $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0], $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1], $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2], $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3], $dport] = 1;
        printf("N %llu %d %u %llu connect udp %rx %u %rx %u %rx %rx\n", nsecs, pid, uid, cgroup, buf($sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16), $sk->__sk_common.skc_num, buf($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16), $dport, buf(comm, 16), buf($kn->name, 128));
      }
    }
  }
}

tracepoint:syscalls:sys_enter_sendto
/args->addr != 0/
{
  @dst[tid] = (uint64)args->addr;
}

tracepoint:syscalls:sys_enter_sendmsg
{
  $m = (struct user_msghdr *)args->msg;
  if ($m->msg_name != 0) { @dst[tid] = (uint64)$m->msg_name; }
}

tracepoint:syscalls:sys_exit_sendto,
tracepoint:syscalls:sys_exit_sendmsg
/@dst[tid] != 0/
{
  $sa = (struct sockaddr_in *)@dst[tid];
  delete(@dst[tid]);
  if (args->ret >= 0) {
    $kn = (struct kernfs_node *)curtask->cgroups->dfl_cgrp->kn;
    if (curtask->cgroups->dfl_cgrp->level == 0) { $kn = (struct kernfs_node *)curtask->cgroups->subsys[$1]->cgroup->kn; }
    if ($sa->sin_family == 2) {
      $a = $sa->sin_addr.s_addr;
      $p = (($sa->sin_port & 0xff) << 8) | ($sa->sin_port >> 8);
      if (@udp4[cgroup, $a, $p] == 0) {
        @udp4[cgroup, $a, $p] = 1;
        printf("N %llu %d %u %llu connect udp 0 0 %u %u %rx %rx\n", nsecs, pid, uid, cgroup, $a, $p, buf(comm, 16), buf($kn->name, 128));
      }
    }
    if ($sa->sin_family == 10) {
      $s6 = (struct sockaddr_in6 *)$sa;
      $p = (($s6->sin6_port & 0xff) << 8) | ($s6->sin6_port >> 8);
      $w0 = $s6->sin6_addr.in6_u.u6_addr32[0];
      $w1 = $s6->sin6_addr.in6_u.u6_addr32[1];
      $w2 = $s6->sin6_addr.in6_u.u6_addr32[2];
      $w3 = $s6->sin6_addr.in6_u.u6_addr32[3];
      if (@udp6[cgroup, $w0, $w1, $w2, $w3, $p] == 0) {
        @udp6[cgroup, $w0, $w1, $w2, $w3, $p] = 1;
        printf("N %llu %d %u %llu connect udp 0 0 %rx %u %rx %rx\n", nsecs, pid, uid, cgroup, buf($s6->sin6_addr.in6_u.u6_addr8, 16), $p, buf(comm, 16), buf($kn->name, 128));
      }
    }
  }
}

// dns:begin
tracepoint:syscalls:sys_enter_read
{
  $fdt = curtask->files->fdt;
  $fd = (uint64)args->fd;
  if ($fd < (uint64)$fdt->max_fds) {
    $file = *($fdt->fd + $fd);
    if (($file->f_inode->i_mode & 0xf000) == 0xc000 && ((struct socket *)$file->private_data)->sk->sk_protocol == 17) {
      @dnsbuf[tid] = (uint64)args->buf;
    }
  }
}

tracepoint:syscalls:sys_enter_recvfrom
{
  $fdt = curtask->files->fdt;
  $fd = (uint64)args->fd;
  if ($fd < (uint64)$fdt->max_fds && ((struct socket *)(*($fdt->fd + $fd))->private_data)->sk->sk_protocol == 17) {
    @dnsbuf[tid] = (uint64)args->ubuf;
  }
}

tracepoint:syscalls:sys_enter_recvmsg
{
  $fdt = curtask->files->fdt;
  $fd = (uint64)args->fd;
  if ($fd < (uint64)$fdt->max_fds && args->msg->msg_iovlen == 1 && ((struct socket *)(*($fdt->fd + $fd))->private_data)->sk->sk_protocol == 17) {
    @dnsbuf[tid] = (uint64)args->msg->msg_iov->iov_base;
  }
}

tracepoint:syscalls:sys_exit_read,
tracepoint:syscalls:sys_exit_recvfrom,
tracepoint:syscalls:sys_exit_recvmsg
/@dnsbuf[tid] != 0/
{
  $p = @dnsbuf[tid];
  delete(@dnsbuf[tid]);
  if (args->ret >= 12) {
    $w = *(uint64 *)uptr($p);
    if ((($w >> 16) & 0xf8) == 0x80 && (($w >> 24) & 0x0f) == 0 && (($w >> 32) & 0xffff) == 0x0100 && (($w >> 48) & 0xffff) != 0) {
      $n = (uint64)args->ret;
      if ($n > 600) { $n = 600; }
      $ns = nsecs;
      $kn = (struct kernfs_node *)curtask->cgroups->dfl_cgrp->kn;
      if (curtask->cgroups->dfl_cgrp->level == 0) { $kn = (struct kernfs_node *)curtask->cgroups->subsys[$1]->cgroup->kn; }
      printf("Q %llu %d %u %llu %llu %rx\n", $ns, pid, uid, cgroup, $n, buf($kn->name, 128));
      $o = (uint64)0;
      unroll(3) {
        if ($o < $n) {
          $c = $n - $o;
          if ($c > 200) { $c = 200; }
          printf("R %llu %d %llu %rx\n", $ns, pid, $o, buf(uptr($p + $o), $c));
        }
        $o += 200;
      }
    }
  }
}

// dns:end

interval:s:60
{
  clear(@udp4);
  clear(@udp6);
  // Never @xns: a clear between an exec's two probes would cost that exec its origin. The second probe
  // deletes each entry in the same call, and BPFTRACE_MAP_KEYS_MAX bounds the map (source.ts).
  // A syscall whose exit never came (its thread killed) would hold its entry; stub resolvers poll
  // before they receive, so a receive in flight across this tick is rare, and only its answer is lost.
  clear(@dnsbuf);
}

END
{
  clear(@xns);
  clear(@udp4);
  clear(@udp6);
  clear(@cfd);
  clear(@dst);
  clear(@dnsbuf);
}
`;

/** The program with or without the DNS probes (the part between the `dns:` markers, and every use of their map). */
export function ebpfProgram(options: { dns: boolean }): string {
  if (options.dns) return EBPF_PROGRAM;
  const begin = EBPF_PROGRAM.indexOf('// dns:begin');
  const end = EBPF_PROGRAM.indexOf('// dns:end');
  return (EBPF_PROGRAM.slice(0, begin) + EBPF_PROGRAM.slice(end))
    .split('\n')
    .filter((line) => !line.includes('@dnsbuf'))
    .join('\n');
}
