"""Import this module in verl's processes to tag samples with the training step:

    export VERL_USE_EXTERNAL_MODULES=sigreward_client.verl_hook

verl imports the modules named there whenever it is imported (the driver and every Ray worker
that inherits the variable), and this module installs ``install_global_steps_hook``.
"""

from sigreward_client.verl import install_global_steps_hook

install_global_steps_hook()
