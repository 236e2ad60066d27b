"""drctl's exit codes, the same for every sub-command (the README's operator section lists them).

0    done: the command did what it was asked (a probe: every site was UP)
1    refused or failed outcome: the command ran but the answer is "no" (a site is DOWN, a drill's
     expectation is unmet, the operator declined the confirmation)
2    bad input: a flag, a config file, a scenario file or a secrets file is wrong; nothing was
     sent to AWS
3    AWS refused or unreachable: credentials, permissions, network, a missing state machine or
     table, an execution of that name already exists
130  interrupted (Ctrl-C)
141  the output was closed early (`drctl status | head`); what was printed stands
"""

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_AWS = 3
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141
