# A stand-in for a remote machine in the Ansible test (tests/deploy/ansible_test.cc): Debian with
# sshd, Python for Ansible's modules, sudo, and the runtime libraries of the programs already
# installed (PACKAGES), so that prepare.yml finds them and needs no network. It also holds systemd
# and Docker: the test runs some hosts with sshd as their only process (replicas run by
# start-stop-daemon), some with systemd as process 1 (replicas as a systemd unit), and one with
# systemd and its own Docker engine (the replica in a container of the project's image, shipped
# by prepare.yml). Docker's units are disabled here; prepare.yml starts Docker where it is used.
FROM debian:bookworm-slim
ARG PACKAGES=""
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      openssh-server python3 sudo systemd systemd-sysv docker.io ${PACKAGES} \
 && rm -rf /var/lib/apt/lists/* \
 && systemctl disable docker.service docker.socket containerd.service \
 && mkdir -p /run/sshd /root/.ssh && chmod 0700 /root/.ssh
EXPOSE 22
CMD ["/usr/sbin/sshd", "-D", "-e"]
