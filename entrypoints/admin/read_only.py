from django.contrib import admin


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Staff may look, never add, change or delete: events and read models are derived or immutable."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
