"""What the post printed, copied from it: the first five and the last logged loss of each program, and the
parameters it printed at the end. The post set no seed, so no run here draws its data or its start: these
numbers are quoted beside a run's, never expected of one."""

BLOG = {
    "params": {"first losses": [386.833191, 385.401001, 383.982391, 382.576904, 381.184418],
               "last loss": 0.985296, "parameters": {"a": 1.0048, "b": -12.0305, "c": 31.8826}},
    "linear": {"first losses": [448.569519, 444.616638, 441.241089, 438.343903, 435.845673],
               "last loss": 1.044041,
               "parameters": {"linear1.weight": 0.7155, "linear1.bias": -5.7249,
                              "linear2.weight": 1.4002, "linear2.bias": -5.6002}},
}
