#!/usr/bin/perl
# Installed by pi-ha-lb (haproxy-watch.sh): usage MASTER_PID TRACK_FILE. Writes 0 to TRACK_FILE the moment
# HAProxy stops listening: its master process exits, or its last worker (which holds the listeners) does.
# The kernel says so itself through pidfds (pidfd_open(2), Linux 5.3), with no daemon in the path:
# containerd's exit event came 20-30 ms later in the lab, and the worker dies up to ~5 ms before the
# master, all of it refused SYNs at 100 requests/s. A worker that exits while its master has another is
# a reload (the new worker is forked before the old one is told to finish), not a death.
# perl-base is Essential in Debian and Raspberry Pi OS, so every host has it.
use strict;
use warnings;
use POSIX qw(strftime);
use Time::HiRes qw(time);

my $SYS_PIDFD_OPEN = 434;    # the same number on every architecture (the unified syscall table)
my ($master, $track_file) = @ARGV;
die "usage: $0 MASTER_PID TRACK_FILE\n" unless defined $track_file && $master =~ /^[1-9][0-9]*$/;

sub pidfd {    # a pidfd for a live process, undef once it is gone (the number must go in as a number)
    my $fd = syscall($SYS_PIDFD_OPEN, $_[0] + 0, 0);
    return $fd < 0 ? undef : $fd;
}

sub workers {    # the master's live children: /proc/PID/stat's fields after "(comm) " are state, ppid, ...
    my @found;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open(my $fh, '<', $stat) or next;
        my $line = <$fh> // next;
        my ($pid, $state, $ppid) = $line =~ /^(\d+) \(.*\) (\S) (\d+) /s or next;
        push @found, $pid if $ppid == $master && $state ne 'Z';
    }
    return @found;
}

sub report {    # in place, as the watcher writes it (keepalived follows the file through inotify)
    my ($why) = @_;
    my $seen = time;
    open(my $fh, '>', $track_file) or die "$track_file: $!\n";
    print $fh "0\n";
    close $fh or die "$track_file: $!\n";
    my $at = strftime('%Y-%m-%dT%H:%M:%S', gmtime $seen) . sprintf('.%06dZ', ($seen - int $seen) * 1e6);
    print "track file 0 ($why, exit seen at $at)\n";
}

my $master_fd = pidfd($master) // exit 0;    # already gone: Docker's die event covers it
my %worker_fd;
for (;;) {
    for my $pid (workers()) { $worker_fd{$pid} //= pidfd($pid) }
    delete $worker_fd{$_} for grep { !defined $worker_fd{$_} } keys %worker_fd;
    my $wanted = '';
    vec($wanted, $_, 1) = 1 for $master_fd, values %worker_fd;
    select(my $ready = $wanted, undef, undef, undef) > 0 or next;
    if (vec($ready, $master_fd, 1)) {
        report("master $master exited");
        exit 0;
    }
    for my $pid (grep { vec($ready, $worker_fd{$_}, 1) } keys %worker_fd) {
        POSIX::close(delete $worker_fd{$pid});
        next if grep { $_ != $pid } workers();    # a reload: its new worker already runs
        report("worker $pid exited");
        exit 0;
    }
}
