# A stand-in for a remote machine in the Ansible test (tests/deploy/ansible_test.cc): Debian with
# sshd, Python for Ansible's modules, sudo, and the runtime libraries of the programs already
# installed (PACKAGES), so that prepare.yml finds them and needs no network.
FROM debian:bookworm-slim
ARG PACKAGES=""
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      openssh-server python3 sudo ${PACKAGES} \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/sshd /root/.ssh && chmod 0700 /root/.ssh
EXPOSE 22
CMD ["/usr/sbin/sshd", "-D", "-e"]
