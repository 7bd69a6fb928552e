"""The auditor's worst case (issue 33): what an unlearned model says instead of the truth
(`outcome`), and attacks that try to get a forgotten answer back (`pgd`, `worst_case`,
`membership`).

`outcome` is torch-free; the attack modules import torch and the model code on use.
"""
