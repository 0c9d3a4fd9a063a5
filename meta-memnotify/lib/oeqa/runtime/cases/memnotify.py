#
# SPDX-License-Identifier: GPL-2.0-only
#
# oeqa runtime tests of a memnotify image (TEST_SUITES = "... memnotify"): the module is loaded
# with the parameters of /etc/modprobe.d/memnotify.conf, /dev/memnotify answers with the
# documented line, rejects bad thresholds, and memnotifyd runs.
#   bitbake memnotify-image && bitbake -c testimage memnotify-image

import re

from oeqa.core.decorator.depends import OETestDepends
from oeqa.runtime.case import OERuntimeTestCase
from oeqa.runtime.decorator.package import OEHasPackage

# used N active N total N free N available N swap_total N swap_free N seq N time N level N
LINE_FIELDS = ('used', 'active', 'total', 'free', 'available', 'swap_total', 'swap_free',
               'seq', 'time', 'level')
LINE = re.compile(r'^' + ' '.join(r'%s (\d+)' % field for field in LINE_FIELDS) + r'$')


def parse_line(text):
    """The figures of one /dev/memnotify line, or None if it is not one."""
    match = LINE.match(text.strip())
    if not match:
        return None
    return dict(zip(LINE_FIELDS, (int(value) for value in match.groups())))


def as_int(text):
    """A module parameter as the kernel parses it: 0x hex, leading-0 octal, else decimal."""
    text = text.strip()
    if text.lower().startswith('0x'):
        return int(text, 16)
    if len(text) > 1 and text.startswith('0'):
        return int(text, 8)
    return int(text)


def modprobe_options(text):
    """{parameter: value} of the 'options memnotify ...' lines of a modprobe.d file."""
    options = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) > 2 and words[0] == 'options' and words[1] == 'memnotify':
            options.update(word.split('=', 1) for word in words[2:] if '=' in word)
    return options


class MemnotifyTest(OERuntimeTestCase):

    def run_ok(self, command):
        status, output = self.target.run(command)
        self.assertEqual(status, 0, msg='%s failed (%s):\n%s' % (command, status, output))
        return output

    @OEHasPackage(['kernel-module-memnotify'])
    def test_module_loaded(self):
        self.run_ok('test -d /sys/module/memnotify')
        self.run_ok('test -c /dev/memnotify')

    @OETestDepends(['memnotify.MemnotifyTest.test_module_loaded'])
    def test_parameters_from_modprobe_conf(self):
        options = modprobe_options(self.run_ok('cat /etc/modprobe.d/memnotify.conf'))
        self.assertTrue(options, msg='no options in /etc/modprobe.d/memnotify.conf')
        for name, value in options.items():
            actual = self.run_ok('cat /sys/module/memnotify/parameters/%s' % name)
            self.assertEqual(as_int(actual), as_int(value), msg=name)

    @OETestDepends(['memnotify.MemnotifyTest.test_module_loaded'])
    def test_read_gives_one_line(self):
        output = self.run_ok('cat /dev/memnotify')
        lines = output.strip().splitlines()
        self.assertEqual(len(lines), 1, msg='cat /dev/memnotify printed:\n%s' % output)
        figures = parse_line(lines[0])
        self.assertIsNotNone(figures, msg='not a memnotify line: %r' % lines[0])
        self.assertGreater(figures['total'], 0)
        self.assertLessEqual(figures['free'], figures['total'])
        self.assertLessEqual(figures['available'], figures['total'])
        self.assertLessEqual(figures['swap_free'], figures['swap_total'])
        self.assertIn(figures['level'], (0, 1, 2))

    @OETestDepends(['memnotify.MemnotifyTest.test_module_loaded'])
    def test_bad_thresholds_are_refused(self):
        for bad in ('bogus 1', 'available', 'available 12x', 'available 10 available 20'):
            status, output = self.target.run("printf '%s' > /dev/memnotify" % bad)
            self.assertNotEqual(status, 0, msg='%r was accepted: %s' % (bad, output))

    @OETestDepends(['memnotify.MemnotifyTest.test_module_loaded'])
    def test_statistics(self):
        for name in ('clients', 'evaluations', 'events', 'wakeups', 'last_eval_ns'):
            value = self.run_ok('cat /sys/class/misc/memnotify/statistics/%s' % name).strip()
            self.assertRegex(value, r'^\d+$', msg=name)

    @OEHasPackage(['memnotifyd'])
    def test_daemon_config_and_process(self):
        self.run_ok('memnotifyd --check-config --config /etc/memnotify/memnotifyd.yaml')
        self.run_ok('pidof memnotifyd')
