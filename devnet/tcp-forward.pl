#!/usr/bin/perl
# tcp-forward.pl LISTEN TARGET: forwards every TCP connection to LISTEN (host:port) to TARGET.
# The container tree needs it because btcd refuses to serve RPC without TLS on anything but
# loopback: btcd listens on 127.0.0.1 in its container and this publishes it to the network.
# Perl is in the Debian base image already; nothing is added to it.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;

my ($listen, $target) = @ARGV;
die "usage: tcp-forward.pl LISTEN TARGET\n" unless $target;
$SIG{CHLD} = 'IGNORE';
my $server = IO::Socket::INET->new(LocalAddr => $listen, Listen => 64, ReuseAddr => 1)
  or die "cannot listen on $listen: $!\n";
while (1) {
  my $client = $server->accept or next;
  if (fork) { close $client; next; }
  close $server;
  my $upstream = IO::Socket::INET->new(PeerAddr => $target) or exit 1;
  my $select = IO::Select->new($client, $upstream);
  while (my @ready = $select->can_read) {
    for my $from (@ready) {
      my $read = sysread($from, my $buffer, 65536);
      exit 0 unless $read;
      my $to = $from == $client ? $upstream : $client;
      syswrite($to, $buffer) or exit 0;
    }
  }
}
