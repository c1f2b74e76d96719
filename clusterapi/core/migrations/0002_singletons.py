"""Create the single rows of the revision counter and the compaction mark."""

from django.db import migrations


def create_singletons(apps, schema_editor):
    apps.get_model("core", "Revision").objects.get_or_create(pk=1, defaults={"value": 0})
    apps.get_model("core", "Compaction").objects.get_or_create(pk=1, defaults={"revision": 0})


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]
    operations = [migrations.RunPython(create_singletons, migrations.RunPython.noop)]
